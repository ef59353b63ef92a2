"""prisma_migrate_resolve as an operator meets it: idempotence and check mode proven by re-reading the table,
diff mode, lists, bad input, method selection, the cli method and its P-codes, and secrets kept out of argv."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.harness.modules import run_module
from tests.harness.pgcluster import Database, free_port
from tests.harness.prisma import PrismaProject, cli_env, major

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

INIT = 'CREATE TABLE "User" ("id" SERIAL NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));\n'
BROKEN = 'CREATE TABLE "Broken" ("id" INTEGER);\nSELECT 1/0;\n'
LATER = 'CREATE TABLE "Later" ("id" INTEGER);\n'
M_INIT, M_BROKEN, M_LATER = "20250101000000_init", "20250102000000_broken", "20250103000000_later"
MIGRATIONS = ((M_INIT, INIT), (M_BROKEN, BROKEN), (M_LATER, LATER))


def cli_extra_env(version: str) -> dict:
    """What the offline test CLI of that version needs (tests/harness/prisma.cli_env); a real host needs none of it."""
    return {k: v for k, v in cli_env("unused", version).items() if k.startswith("PRISMA_") or k in ("NODE_OPTIONS",)}


@pytest.fixture(scope="module")
def failed_template(pg_cluster, tmp_path_factory, prisma_version):
    """init applied, broken failed (by the real CLI of the test's version), later only local; copied for each test."""
    base = pg_cluster.create_database()
    project = PrismaProject.create(tmp_path_factory.mktemp("tpl") / "app", base.url(), version=prisma_version)
    for name, script in MIGRATIONS:
        project.add_migration(name, script)
    assert project.deploy().returncode == 1
    yield base
    pg_cluster.drop_database(base.name)


@pytest.fixture
def failed(failed_template, tmp_path, prisma_version):
    """(database, project) in the failed state: a fresh copy of the template and an app tree pointing at it."""
    db = failed_template.copy(failed_template.name + "_" + os.urandom(3).hex())
    project = PrismaProject.create(tmp_path / "app", db.url(), version=prisma_version)
    for name, script in MIGRATIONS:
        project.add_migration(name, script)
    yield db, project
    db.cluster.drop_database(db.name)


def table(db: Database) -> list:
    """Every row, every column: the proof, rather than `changed`."""
    return db.execute("SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, "
                      "applied_steps_count FROM _prisma_migrations ORDER BY started_at, id")


def resolve(db: Database, project: PrismaProject | None = None, check_mode: bool = False, diff: bool = False, **args):
    params = {"database_url": db.url(), "method": "native"}
    if project is not None:
        params["migrations_dir"] = str(project.migrations_dir)
    params.update(args)
    return run_module("prisma_migrate_resolve", params, check_mode=check_mode, diff=diff)


def assert_failed(result: dict, *needles: str, secret: str | None = None) -> None:
    assert result["_rc"] != 0 and result.get("failed") is True, result
    for needle in needles:
        assert needle in result["msg"], result["msg"]
    if secret:
        assert secret not in result["_stdout"] + result["_stderr"]


# --- idempotence, check mode, diff ----------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["applied", "rolled_back"])
def test_second_run_writes_nothing(failed, state):
    db, project = failed
    first = resolve(db, project, name=M_BROKEN, state=state)
    after_first = table(db)
    second = resolve(db, project, name=M_BROKEN, state=state)

    assert first["_rc"] == 0 and first["changed"] is True and first["resolved"] == [M_BROKEN]
    assert second["_rc"] == 0 and second["changed"] is False and second["resolved"] == []
    assert second["outcomes"][0]["outcome"] == "unchanged" and second["statements"] == []
    assert table(db) == after_first  # byte for byte: not even a timestamp moved
    broken = [r for r in after_first if r[3] == M_BROKEN]
    assert all(r[5] is not None for r in broken if r[2] is None)  # no failed row left
    assert len(broken) == (2 if state == "applied" else 1)
    assert len(after_first) == 3 if state == "applied" else 2  # other migrations' rows untouched
    assert [r for r in after_first if r[3] == M_INIT] == [r for r in table(db) if r[3] == M_INIT]


def test_check_mode_predicts_the_run_and_writes_nothing(failed):
    db, project = failed
    before = table(db)
    preview = resolve(db, project, check_mode=True, name=M_BROKEN, state="applied")
    assert table(db) == before
    assert preview["changed"] is True and preview["resolved"] == [M_BROKEN] and preview["lock"] is None
    assert [a["kind"] for a in preview["outcomes"][0]["actions"]] == ["roll_back_row", "insert_applied_row"]
    assert preview["statements"][0].startswith('UPDATE "public"."_prisma_migrations" SET rolled_back_at')
    assert "'<new uuid v4>'" in preview["statements"][1]

    real = resolve(db, project, name=M_BROKEN, state="applied")

    new_id = [r[0] for r in table(db) if r[0] not in {b[0] for b in before}]
    assert len(new_id) == 1
    assert real["statements"] == [s.replace("<new uuid v4>", new_id[0]) for s in preview["statements"]]
    predicted = preview["rows"][M_BROKEN]
    actual = real["rows"][M_BROKEN]
    assert [(r["id"] == "<new uuid v4>" or r["id"], r["finished_at"] is None, r["rolled_back_at"] is None, r["logs"] == "")
            for r in predicted] == \
        [(r["id"] == new_id[0] or r["id"], r["finished_at"] is None, r["rolled_back_at"] is None, r["logs"] == "")
         for r in actual]
    # And a check run now predicts nothing.
    resolved_rows = table(db)
    again = resolve(db, project, check_mode=True, name=M_BROKEN, state="applied")
    assert again["changed"] is False and again["statements"] == [] and table(db) == resolved_rows


def test_diff_mode_shows_the_rows_before_and_after(failed):
    db, project = failed
    failed_id = [r[0] for r in table(db) if r[3] == M_BROKEN][0]
    result = resolve(db, project, diff=True, name=M_BROKEN, state="rolled_back")

    before, after = result["diff"]["before"][M_BROKEN], result["diff"]["after"][M_BROKEN]
    assert [(r["id"], r["rolled_back_at"]) for r in before] == [(failed_id, None)]
    assert [r["id"] for r in after] == [failed_id] and after[0]["rolled_back_at"] is not None
    assert after[0]["rolled_back_at"] == table(db)[1][5].isoformat()
    assert M_INIT not in result["diff"]["after"]


def test_baseline_a_list_on_a_database_without_the_table(pg_cluster, tmp_path):
    db = pg_cluster.create_database()
    try:
        db.execute('CREATE TABLE "Legacy" ("id" INTEGER)')  # not empty: deploy would say P3005
        project = PrismaProject.create(tmp_path / "app", db.url())
        project.add_migration(M_INIT, INIT)
        project.add_migration(M_LATER, LATER)
        names = [M_INIT, M_LATER]

        first = resolve(db, project, name=names, state="applied")
        rows = table(db)
        second = resolve(db, project, name=names, state="applied")

        assert first["changed"] is True and first["resolved"] == names and first["table_created"] is True
        assert first["statements"][0].startswith('CREATE TABLE "public"."_prisma_migrations"')
        assert [(r[3], r[2] == r[6], r[4], r[7]) for r in rows] == [(M_INIT, True, "", 0), (M_LATER, True, "", 0)]
        assert second["changed"] is False and table(db) == rows
        assert db.execute('SELECT count(*) FROM "Legacy"') == [(0,)]  # no migration SQL ran
        assert db.execute("SELECT to_regclass('\"User\"')") == [(None,)]
    finally:
        pg_cluster.drop_database(db.name)


def test_one_refused_name_in_a_list_means_nothing_is_written(failed):
    db, project = failed
    before = table(db)
    result = resolve(db, project, name=[M_BROKEN, M_LATER], state="rolled_back")
    assert_failed(result, "nothing was written", "P3011", M_LATER)
    assert result["code"] == "P3011" and result["changed"] is False and result["resolved"] == []
    assert [o["outcome"] for o in result["outcomes"]] == ["changed", "refused"]
    assert table(db) == before


# --- bad input ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, needle", [
    ("20250102000000_x'; DROP TABLE _prisma_migrations; --", "contains"),
    ("20250102000000_x;y", "';'"),
    ("../20250102000000_broken", "contains"),
    ("20250102000000_broken\n", "control character"),
    ("x" * 256, "256 characters"),
    ("--rolled-back", "starts with '-'"),
])
def test_bad_names_fail_before_connecting(name, needle):
    # A server that does not exist: the failure must be about the name, so nothing was even attempted.
    url = "postgresql://app:B4d-Name-Secret@127.0.0.1:%d/app" % free_port()
    result = run_module("prisma_migrate_resolve", {"database_url": url, "name": [name], "state": "rolled_back"})
    assert_failed(result, needle, secret="B4d-Name-Secret")
    assert "connect" not in result["msg"]


def test_name_with_no_folder_is_p3017_and_nothing_is_written(failed):
    db, project = failed
    before = table(db)
    result = resolve(db, project, name="20250109000000_typo", state="applied")
    assert_failed(result, "P3017", "20250109000000_typo", str(project.migrations_dir), secret=db.owner.password)
    assert table(db) == before


def test_unreachable_database_is_a_clear_failure():
    port = free_port()
    result = run_module("prisma_migrate_resolve", {
        "database_url": "postgresql://app:Unre4ch-Secret@127.0.0.1:%d/app" % port, "name": M_BROKEN,
        "state": "rolled_back", "connect_timeout": 3})
    assert_failed(result, "connection refused", "127.0.0.1:%d/app" % port, secret="Unre4ch-Secret")


def test_applied_needs_a_migrations_folder_for_native(failed):
    db, _project = failed
    result = resolve(db, None, name=M_BROKEN, state="applied")
    assert_failed(result, "migrations_dir", secret=db.owner.password)


def test_environment_must_not_carry_the_url(failed):
    db, project = failed
    result = resolve(db, project, name=M_BROKEN, state="rolled_back", method="cli", project_dir=str(project.root),
                     environment={"DATABASE_URL": "postgresql://x:Env-Secret@h/db"})
    assert_failed(result, "must not set DATABASE_URL", secret="Env-Secret")


# --- method selection and the cli method ----------------------------------------------------------------------------

def test_auto_picks_native_without_a_project_cli(failed, tmp_path):
    db, project = failed
    bare = tmp_path / "bare"
    bare.mkdir()
    without = resolve(db, project, method="auto", name=M_BROKEN, state="rolled_back", project_dir=str(bare),
                      check_mode=True)
    nothing = resolve(db, project, method="auto", name=M_BROKEN, state="rolled_back", check_mode=True)
    cli_missing = resolve(db, project, method="cli", name=M_BROKEN, state="rolled_back", project_dir=str(bare))
    no_dir = resolve(db, project, method="cli", name=M_BROKEN, state="rolled_back")

    assert without["method"] == "native" and "no project CLI" in without["method_reason"]
    assert nothing["method"] == "native"
    assert_failed(cli_missing, "does not exist", "method=native")
    assert_failed(no_dir, "set project_dir")


def process_table() -> dict:
    """pid -> (parent pid, argv) of every process visible now."""
    table_now = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        table_now[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), argv)
    return table_now


def watch_own_processes(stop: threading.Event, own: dict, engine: dict) -> None:
    """Collect every argv seen for this test's module run (the module's python, a child of this pytest process) and
    for that python's direct children (the Prisma CLI) in `own`, for the CLI's children (its schema engine) in
    `engine`: {pid: {argv, ...}} (a process shows its parent's argv before exec, none once it exited).
    Parallel tests' processes and anything further down are out of scope."""
    me = os.getpid()
    while not stop.is_set():
        procs = process_table()
        for pid, (ppid, argv) in procs.items():
            parent = procs.get(ppid)
            if not argv:
                continue
            if ppid == me and any("plugins.modules.prisma_migrate_resolve" in a for a in argv):
                own.setdefault(pid, set()).add(tuple(argv))
            elif parent and parent[0] == me and any("plugins.modules." in a for a in parent[1]):
                own.setdefault(pid, set()).add(tuple(argv))
            elif parent and parent[0] in procs and procs[parent[0]][0] == me:
                engine.setdefault(pid, set()).add(tuple(argv))


@pytest.mark.prisma
@pytest.mark.both_prisma_clis
def test_cli_method_runs_the_projects_prisma_without_the_url_on_argv(failed):
    db, project = failed
    secret = db.owner.password
    own: dict = {}
    engine: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_own_processes, args=(stop, own, engine))
    watcher.start()
    try:
        result = resolve(db, project, method="auto", project_dir=str(project.root),
                         environment=cli_extra_env(project.version), name=M_BROKEN, state="rolled_back")
    finally:
        stop.set()
        watcher.join()
    second = resolve(db, project, method="auto", project_dir=str(project.root),
                     environment=cli_extra_env(project.version), name=M_BROKEN, state="rolled_back")
    seen_argv = [argv for seen in own.values() for argv in seen]

    assert result["_rc"] == 0, result.get("msg")
    assert result["method"] == "cli" and "node_modules/.bin/prisma" in result["method_reason"]
    assert result["changed"] is True and result["resolved"] == [M_BROKEN]
    assert result["commands"][0]["argv"][-3:] == ["resolve", "--rolled-back", M_BROKEN]
    assert result["commands"][0]["rc"] == 0 and "marked as rolled back" in result["commands"][0]["stdout"]
    broken = [r for r in table(db) if r[3] == M_BROKEN]
    assert len(broken) == 1 and broken[0][5] is not None
    # Idempotent without asking Prisma (which would succeed here, but fail with P3008 for applied).
    assert second["changed"] is False and second["commands"] == []
    # The CLI really ran, and neither the module nor the CLI it started had the password or the URL on its command line.
    assert any("--rolled-back" in argv for argv in seen_argv), "the watcher never saw the CLI"
    for argv in seen_argv:
        assert not any("postgresql://" in a or secret in a for a in argv), argv
    # Below the CLI only Prisma's own schema engine child runs: the 7.x CLI passes it the URL, password included
    # (--datasource {"url": ...}); 6.19.3 runs its engine in-process here. Out of the module's reach: it warns.
    with_secret = [argv for seen in engine.values() for argv in seen if any(secret in a for a in argv)]
    if major(project.version) >= 7:
        assert with_secret and all(any(a.endswith(("schema-engine.sh", "schema-engine-shim.mjs")) for a in argv) for argv in with_secret), \
            engine
    else:
        assert with_secret == [], with_secret
    warned = str(result.get("warnings"))
    assert "schema engine child's command line" in warned and "method=native" in warned, warned
    assert not second.get("warnings")  # nothing ran the second time, so nothing to warn about
    assert secret not in result["_stdout"] + result["_stderr"]


@pytest.mark.prisma
@pytest.mark.both_prisma_clis
def test_cli_p_codes_become_structured_failures(failed, tmp_path):
    db, project = failed
    # The module's migrations_dir has the folder; the project's own Prisma config points at one that does not:
    # only the CLI can find that out, and its P3017 must come back as code + message.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(project.migrations_dir, elsewhere)
    project.remove_migration(M_LATER)
    before = table(db)

    result = resolve(db, project, method="cli", project_dir=str(project.root), environment=cli_extra_env(project.version),
                     migrations_dir=str(elsewhere), name=M_LATER, state="applied")

    assert_failed(result, "prisma migrate resolve --applied %s failed (exit 1) with P3017" % M_LATER,
                  secret=db.owner.password)
    assert result["code"] == "P3017" and "could not be found" in result["cli_message"]
    assert result["changed"] is False and result["resolved"] == []
    assert table(db) == before


@pytest.mark.prisma
@pytest.mark.both_prisma_clis
def test_cli_applied_then_deploy_runs_the_rest(failed):
    db, project = failed
    args = dict(method="cli", project_dir=str(project.root), environment=cli_extra_env(project.version), name=M_BROKEN,
                state="applied")
    first = resolve(db, project, **args)
    rows = table(db)
    second = resolve(db, project, **args)  # Prisma alone would fail with P3008 here

    assert first["changed"] is True and first["method"] == "cli"
    assert second["_rc"] == 0 and second["changed"] is False and table(db) == rows
    deploy = project.deploy()
    assert deploy.returncode == 0, deploy.output
    assert [r[3] for r in table(db) if r[2] is not None and r[5] is None] == [M_INIT, M_BROKEN, M_LATER]


# --- failures: what was committed decides the advice (issue 13) -----------------------------------------------------

def test_check_mode_refuses_a_missing_schema_as_the_real_run_does(failed):
    db, project = failed
    before = table(db)
    url = db.url(schema="nowhere")
    for check_mode in (True, False):
        result = resolve(db, project, check_mode=check_mode, database_url=url, name=M_INIT, state="applied")
        assert_failed(result, "schema 'nowhere' does not exist", "nothing was written")
        assert result["code"] == "no_schema" and result["changed"] is False
    assert table(db) == before
    assert db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'nowhere'") == [(0,)]


def test_a_read_only_database_points_at_the_primary_not_at_running_again(failed):
    db, project = failed
    before = table(db)
    db.execute('ALTER DATABASE "%s" SET default_transaction_read_only = on' % db.name)
    result = resolve(db, project, name=M_BROKEN, state="rolled_back")
    assert_failed(result, "nothing was written", "point the URL at the primary", "default_transaction_read_only")
    assert result["code"] == "transaction_failed" and result["sqlstate"] == "25006"
    assert "Running again is safe" not in result["msg"]
    assert table(db) == before


def test_a_not_null_column_added_by_hand_is_named(failed):
    db, project = failed
    db.execute("ALTER TABLE _prisma_migrations ADD COLUMN tenant text NOT NULL DEFAULT 'a'; "
               "ALTER TABLE _prisma_migrations ALTER COLUMN tenant DROP DEFAULT")
    before = db.execute("SELECT * FROM _prisma_migrations ORDER BY started_at, id")
    result = resolve(db, project, name=M_BROKEN, state="applied")
    assert_failed(result, "nothing was written", "column tenant of \"public\".\"_prisma_migrations\" is NOT NULL")
    assert result["code"] == "transaction_failed" and result["sqlstate"] == "23502"
    assert "Running again is safe" not in result["msg"]
    assert db.execute("SELECT * FROM _prisma_migrations ORDER BY started_at, id") == before


def test_statement_timeout_names_the_setting_and_the_role(failed):
    db, project = failed
    before = table(db)
    db.execute("ALTER DATABASE \"%s\" SET statement_timeout = '1s'" % db.name)
    failed_id = [r[0] for r in before if r[3] == M_BROKEN and r[2] is None][0]
    holder = db.connect(autocommit=False)
    try:
        with holder.cursor() as cur:  # a session editing the row by hand: the UPDATE waits on its row lock
            cur.execute("SELECT 1 FROM _prisma_migrations WHERE id = %s FOR UPDATE", (failed_id,))
        result = resolve(db, project, name=M_BROKEN, state="rolled_back", lock_timeout=30)
    finally:
        holder.rollback()
        holder.close()
    assert_failed(result, "nothing was written", "statement_timeout",
                  "ALTER ROLE \"%s\" SET statement_timeout" % db.owner.name)
    assert result["code"] == "transaction_failed" and result["sqlstate"] == "57014"
    assert table(db) == before


def _idle_in_transaction_error(db: Database):
    """A real 25P03: a session in a transaction that the server ends for idling, then used."""
    import psycopg2
    from tests.harness.pgcluster import wait_for
    victim = db.connect(autocommit=False)
    try:
        with victim.cursor() as cur:
            cur.execute("SET idle_in_transaction_session_timeout = '50ms'")
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        # The event is the backend's exit, seen from another session.
        assert wait_for(lambda: db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)) == [(0,)])
        with pytest.raises(psycopg2.Error) as raised:
            with victim.cursor() as cur:
                cur.execute("SELECT 1")
        return raised.value
    finally:
        victim.close()


def test_an_idle_in_transaction_kill_before_commit_is_safe_after_the_fix_and_at_commit_is_not(failed):
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.resolve import (
        AT_COMMIT, BEFORE_COMMIT, transaction_failure,
    )
    db, _project = failed
    exc = _idle_in_transaction_error(db)
    before = transaction_failure(exc, BEFORE_COMMIT, "public", ["UPDATE ..."], user=db.owner.name, names=[M_BROKEN])
    assert "nothing was written" in before.msg and "idle_in_transaction_session_timeout" in before.msg
    assert "Running again is safe" not in before.msg
    at_commit = transaction_failure(exc, AT_COMMIT, "public", ["UPDATE ..."], user=db.owner.name, names=[M_BROKEN])
    assert at_commit.details["code"] == "commit_unknown"
    assert "may or may not be committed" in at_commit.msg and M_BROKEN in at_commit.msg
    assert "nothing was written" not in at_commit.msg and "safe" not in at_commit.msg
