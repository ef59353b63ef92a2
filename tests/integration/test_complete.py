"""prisma_migration_complete on real PostgreSQL, with failures made by the real Prisma CLI 6.19.3.

The reference for the rows is the real `prisma migrate resolve --applied`, run on a twin database
(CREATE DATABASE ... TEMPLATE) after the same missing statements were run there by hand. Schemas are
compared with pg_dump --schema-only, rows column by column (new ids and timestamps by pattern and
order), so neither side is read through the module's own code.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from tests.harness.modules import run_module
from tests.harness.pgcluster import pg_bindir
from tests.harness.scenario import BLOCKER, GUARDIANS, INIT, UNBLOCK, make_p3009
from tests.integration.test_resolve_compat import normalized, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma]

PRISMA_LOCK_KEY = 72707369
TINY_INIT = 'CREATE TABLE "Base" ("id" INTEGER NOT NULL, CONSTRAINT "Base_pkey" PRIMARY KEY ("id"));\n'


def schema_dump(db) -> str:
    """The schema as pg_dump prints it (the database's name does not appear in it)."""
    cluster = db.cluster
    proc = subprocess.run([str(pg_bindir() / "pg_dump"), "--schema-only", "--no-owner", "-h", "127.0.0.1", "-p",
                           str(cluster.port), "-U", cluster.superuser.name, db.name],
                          env={**os.environ, "PGPASSWORD": cluster.superuser.password}, capture_output=True, text=True,
                          check=True, timeout=60)
    # pg_dump 15 prints a random \restrict key on newer point releases; keep only the SQL.
    return "\n".join(line for line in proc.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def complete(db, project, name: str = GUARDIANS, check_mode: bool = False, diff: bool = False, **extra) -> dict:
    args = {"database_url": db.url(), "name": name, "migrations_dir": str(project.migrations_dir)}
    args.update(extra)
    return run_module("prisma_migration_complete", args, check_mode=check_mode, diff=diff)


def fail_then_shape(project, db, name: str, script: str, upto: int) -> None:
    """A genuine failed row written by the real CLI (DDL blocked for one deploy), then statements 1..upto run by hand,
    as a statement-at-a-time engine leaves it."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
    project.add_migration("20240101000000_base", TINY_INIT)
    assert project.deploy().returncode == 0
    project.add_migration(name, script)
    db.execute(BLOCKER, superuser=True)
    try:
        assert project.deploy().returncode != 0
    finally:
        db.execute(UNBLOCK, superuser=True)
    for statement in parse_script(script).statements[:upto]:
        db.execute(statement.sql)
    assert project.deploy().error_code == "P3009"


def indexes(result: dict, key: str) -> list:
    return [s["index"] for s in result[key]]


def test_partial_is_completed_with_the_rows_the_cli_writes_and_deploy_then_succeeds(project, db, pg_cluster):
    make_p3009(project, db, "partial")                     # statements 1-3 of 5 committed
    twin = db.copy(db.name + "_cli")
    try:
        before_rows, before_schema = rows_of(db), schema_dump(db)

        preview = complete(db, project, check_mode=True, diff=True)
        assert preview["changed"] is True and not preview.get("failed"), preview["msg"]
        assert indexes(preview, "ran") == [4, 5] and indexes(preview, "skipped_present") == [1, 2, 3]
        assert preview["resolved"] == [GUARDIANS] and preview["lock"] is None
        assert "<new uuid v4>" in preview["statements"][-1]
        assert len(preview["diff"]["after"]) == 2 and preview["diff"]["after"][0]["rolled_back_at"] == "<now>"
        assert rows_of(db) == before_rows and schema_dump(db) == before_schema   # check mode changed nothing

        done = complete(db, project, diff=True)
        assert done["changed"] is True and not done.get("failed"), done["msg"]
        assert indexes(done, "ran") == indexes(preview, "ran")                  # check mode predicted the run
        assert indexes(done, "skipped_present") == [1, 2, 3] and done["resolved"] == [GUARDIANS]
        assert [r["finished_at"] is None for r in done["diff"]["before"]] == [True]
        assert db.owner.password not in done["_stdout"] and db.url() not in done["_stdout"]

        # The reference: the same missing statements by hand on the twin, then the real CLI's resolve --applied.
        from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
        script = (project.migrations_dir / GUARDIANS / "migration.sql").read_text()
        for statement in parse_script(script).statements[3:]:
            twin.execute(statement.sql)
        cli = project.cli("migrate", "resolve", "--applied", GUARDIANS, database_url=twin.url())
        assert cli.returncode == 0, cli.output

        assert schema_dump(db) == schema_dump(twin)
        assert 'CREATE INDEX "Student_guardianId_idx"' in schema_dump(db)
        assert "Student_guardianId_fkey" in schema_dump(db)
        assert normalized(rows_of(db), before_rows) == normalized(rows_of(twin), before_rows)

        deploy = project.deploy()
        assert deploy.returncode == 0, deploy.output
        assert "No pending migrations to apply" in deploy.output
        status = project.status()
        assert status.returncode == 0 and "Database schema is up to date" in status.output, status.output

        after_rows = rows_of(db)
        again = complete(db, project)
        assert again["changed"] is False and again["ran"] == [] and again["resolved"] == [] and not again.get("failed")
        assert rows_of(db) == after_rows
        assert complete(db, project, check_mode=True)["changed"] is False
    finally:
        pg_cluster.drop_database(twin.name)


def test_a_statement_failing_midway_rolls_back_schema_and_rows(project, db):
    make_p3009(project, db, "partial")
    # A student pointing at a guardian that does not exist: statement 5 (the foreign key) fails after statement 4 ran.
    db.execute('INSERT INTO "School" ("name", "code") VALUES (\'s\', \'s\')')
    db.execute('INSERT INTO "User" ("email", "passwordHash", "schoolId") VALUES (\'a@b\', \'x\', 1)')
    db.execute('INSERT INTO "Student" ("userId", "guardianId") VALUES (1, 424242)')
    before_rows, before_schema = rows_of(db), schema_dump(db)

    result = complete(db, project)

    assert result["failed"] is True and result["code"] == "statement_failed", result["msg"]
    assert result["statement"]["index"] == 5
    assert "statement 5 of %s failed" % GUARDIANS in result["msg"] and "foreign key" in result["msg"]
    assert "rolled back" in result["msg"] and result["changed"] is False
    assert [s["index"] for s in result["ran_before_failure"]] == [4]
    assert rows_of(db) == before_rows
    assert schema_dump(db) == before_schema                 # statement 4's index is gone again
    assert db.execute("SELECT to_regclass('public.\"Student_guardianId_idx\"')") == [(None,)]
    assert db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                      (PRISMA_LOCK_KEY,)) == [(0,)]


def test_a_read_only_database_gets_its_advice_and_nothing_changes(project, db):
    make_p3009(project, db, "partial")
    before_rows, before_schema = rows_of(db), schema_dump(db)
    db.execute('ALTER ROLE "%s" SET default_transaction_read_only = on' % db.owner.name, superuser=True)
    try:
        result = complete(db, project)
    finally:
        db.execute('ALTER ROLE "%s" RESET default_transaction_read_only' % db.owner.name, superuser=True)

    assert result["failed"] is True and result["code"] == "statement_failed" and result["sqlstate"] == "25006"
    assert "accepts only reads" in result["msg"] and "default_transaction_read_only" in result["msg"], result["msg"]
    assert "rolled back" in result["msg"] and "safe" not in result["msg"]
    assert rows_of(db) == before_rows and schema_dump(db) == before_schema


def test_a_session_lost_at_commit_is_commit_unknown_never_safe(project, db):
    """The server ends the session while COMMIT runs (a deferred trigger terminates its own backend): the module
    cannot know whether the change was committed, and says so instead of "running again is safe"."""
    make_p3009(project, db, "partial")
    db.execute("""
        CREATE FUNCTION end_my_session() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER at_commit AFTER UPDATE ON _prisma_migrations
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION end_my_session();
    """, superuser=True)
    before_rows, before_schema = rows_of(db), schema_dump(db)

    result = complete(db, project)

    assert result["failed"] is True and result["code"] == "commit_unknown", result
    assert "may or may not be committed" in result["msg"] and GUARDIANS in result["msg"]
    assert "safe" not in result["msg"] and "nothing was" not in result["msg"]
    # Here the server aborted it: nothing is committed, and a reader of the rows sees that.
    assert rows_of(db) == before_rows and schema_dump(db) == before_schema


def test_lock_held_by_another_session_times_out_with_nothing_changed(project, db):
    make_p3009(project, db, "partial")
    before_rows, before_schema = rows_of(db), schema_dump(db)
    holder = db.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("SET application_name = 'a prisma deploy'")
            cur.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (PRISMA_LOCK_KEY,))
            pid = cur.fetchone()[1]
        started = time.monotonic()
        result = complete(db, project, lock_timeout=1)
        elapsed = time.monotonic() - started
    finally:
        holder.close()

    assert result["failed"] is True and result["code"] == "lock_timeout", result["msg"]
    assert "pid %d" % pid in result["msg"] and "'a prisma deploy'" in result["msg"]
    assert "Nothing was written" in result["msg"] and result["lock_holder"]["pid"] == pid
    assert elapsed < 10
    assert rows_of(db) == before_rows and schema_dump(db) == before_schema
    # Nothing was left queued on the lock.
    assert db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                      (PRISMA_LOCK_KEY,)) == [(0,)]


def test_waits_for_the_lock_then_completes(project, db):
    make_p3009(project, db, "partial")
    holder = db.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (PRISMA_LOCK_KEY,))
    waiting = threading.Event()

    def release_once_the_module_waits() -> None:
        # The event, not a clock: the module's session has asked for Prisma's lock (it polls pg_try_advisory_lock).
        watcher = db.connect(superuser=True)
        try:
            with watcher.cursor() as cur:
                for _attempt in range(3000):  # a safety net (about 5 min), far above a loaded machine's start-up
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                                "AND query LIKE %s", ("prisma_ops.migrate/prisma_migration_complete",
                                                      "%pg_try_advisory_lock%"))
                    if cur.fetchone()[0]:
                        waiting.set()
                        break
                    time.sleep(0.1)
        finally:
            watcher.close()
            holder.close()

    releaser = threading.Thread(target=release_once_the_module_waits)
    releaser.start()
    try:
        result = complete(db, project, lock_timeout=100)  # the harness allows a module 120 s
    finally:
        releaser.join(timeout=600)
        holder.close()
    assert waiting.is_set()
    assert result["changed"] is True and not result.get("failed"), result["msg"]
    assert result["lock_waited"] > 0
    assert indexes(result, "ran") == [4, 5]


def test_a_statement_that_cannot_be_checked_refuses_naming_it(project, db):
    name = "20240201000000_tags"
    script = ('CREATE TABLE "Tag" ("id" INTEGER NOT NULL);\n'
              'INSERT INTO "Tag" ("id") VALUES (1);\n'
              'CREATE TABLE "Label" ("id" INTEGER NOT NULL);\n')
    fail_then_shape(project, db, name, script, upto=1)
    before_rows, before_schema = rows_of(db), schema_dump(db)

    for check_mode in (True, False):
        result = complete(db, project, name=name, check_mode=check_mode)
        assert result["failed"] is True and result["code"] == "cannot_tell", result["msg"]
        assert result["statement"]["index"] == 2 and result["statement"]["kind"] == "insert"
        assert result["msg"].startswith("statement 2 (insert Tag: INSERT INTO")
        assert "cannot be checked" in result["msg"] and "Nothing was done" in result["msg"]
    assert rows_of(db) == before_rows and schema_dump(db) == before_schema


def test_a_missing_statement_that_cannot_run_in_a_transaction_is_refused_by_name(project, db):
    name = "20240201000000_docs"
    script = ('CREATE TABLE "Doc" ("id" INTEGER NOT NULL);\n'
              'CREATE INDEX CONCURRENTLY "Doc_id_idx" ON "Doc"("id");\n')
    fail_then_shape(project, db, name, script, upto=1)
    before_rows, before_schema = rows_of(db), schema_dump(db)

    result = complete(db, project, name=name)

    assert result["failed"] is True and result["code"] == "not_transactional", result["msg"]
    assert result["statement"]["index"] == 2
    assert "CONCURRENTLY cannot run inside a transaction block" in result["msg"]
    assert "Run it by hand" in result["msg"]
    assert rows_of(db) == before_rows and schema_dump(db) == before_schema

    # Once the operator ran it by hand it is present, skipped, and the rest completes.
    db.execute('CREATE INDEX CONCURRENTLY "Doc_id_idx" ON "Doc"("id")')
    done = complete(db, project, name=name)
    assert done["changed"] is True and done["ran"] == [] and indexes(done, "skipped_present") == [1, 2], done["msg"]
    assert project.deploy().returncode == 0


def test_enum_value_and_transaction_control(project, db):
    """ALTER TYPE ... ADD VALUE runs in a transaction from PostgreSQL 12 on; the script's own BEGIN/COMMIT is not run."""
    name = "20240201000000_mood"
    script = ('BEGIN;\n'
              'CREATE TYPE "Mood" AS ENUM (\'HAPPY\');\n'
              'ALTER TYPE "Mood" ADD VALUE \'SAD\';\n'
              'CREATE TABLE "Feeling" ("id" INTEGER NOT NULL, "mood" "Mood" NOT NULL);\n'
              'COMMIT;\n')
    fail_then_shape(project, db, name, script, upto=0)
    db.execute('CREATE TYPE "Mood" AS ENUM (\'HAPPY\')')  # statement 2 only, by hand

    result = complete(db, project, name=name)

    assert result["changed"] is True and not result.get("failed"), result["msg"]
    assert indexes(result, "ran") == [3, 4] and indexes(result, "skipped_present") == [2]
    assert indexes(result, "skipped_control") == [1, 5]
    assert db.execute("SELECT enum_range(NULL::\"Mood\")::text") == [("{HAPPY,SAD}",)]
    assert project.deploy().returncode == 0


def test_already_applied_is_unchanged_and_refusals_change_nothing(project, db):
    make_p3009(project, db, "partial")
    before_rows, before_schema = rows_of(db), schema_dump(db)

    applied = complete(db, project, name=INIT)
    assert applied["changed"] is False and not applied.get("failed") and applied["ran"] == [], applied["msg"]
    assert applied["msg"].startswith("nothing to do: already applied")

    missing = complete(db, project, name="20990101000000_nope")
    assert missing["failed"] is True and missing["code"] == "P3017" and "no such folder" in missing["msg"]
    bad = complete(db, project, name="x'; DROP TABLE \"Student\"; --")
    assert bad["failed"] is True and "contains" in bad["msg"]
    assert rows_of(db) == before_rows and schema_dump(db) == before_schema

    # Rolled back by the real CLI: deploy re-runs it, so it is not this module's to complete.
    assert project.resolve(GUARDIANS, "rolled_back").returncode == 0
    rolled_back = rows_of(db)
    result = complete(db, project)
    assert result["failed"] is True and result["code"] == "not_failed", result["msg"]
    assert "only rolled back" in result["msg"]
    assert rows_of(db) == rolled_back and schema_dump(db) == before_schema


def test_examples_and_docs(project, db, tmp_path):
    """ansible-doc renders the module, and its EXAMPLES (written for the guardians migration) run as written."""
    from tests.integration.test_module_docs import REPO, ansible_env, example_tasks, run_playbook, venv_tool
    doc = subprocess.run([venv_tool("ansible-doc"), "prisma_ops.migrate.prisma_migration_complete"], cwd=REPO,
                         env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert doc.returncode == 0 and "skipped_present" in doc.stdout and "not_transactional" in doc.stdout, doc.stderr
    make_p3009(project, db, "partial")
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=%s\n" % db.url())
    tasks = example_tasks("prisma_migration_complete", {"env_file": str(env_file),
                                                        "migrations_dir": str(project.migrations_dir)})

    proc = run_playbook(tmp_path, tasks, {})

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=%d" % len(tasks) in proc.stdout and "failed=0" in proc.stdout
    assert "CREATE INDEX" in proc.stdout                 # the preview's statements, shown by the debug task
    assert db.owner.password not in proc.stdout + proc.stderr
    assert project.deploy().returncode == 0 and project.status().returncode == 0
