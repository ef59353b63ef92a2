"""pg_restore against real PostgreSQL 15 with real pg_backup backups: every format restores the exact tables and
_prisma_migrations rows of the backup (even after a later migration added a table), and every refusal (no or wrong
confirm, a tampered backup, a backup of another database, a schema the user does not own, Prisma's lock held, an
app session holding a lock) changes nothing; check mode writes nothing; the password is in no process list."""

from __future__ import annotations

import glob
import json
import os
import threading

import pytest

from tests.harness.modules import run_module
from tests.harness.pgcluster import Database, database_copy, seeded_database, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PASSWORD = "Pw:x@y/z?%25\\q'"
SEED = r"""
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');
CREATE TABLE "User" ("id" SERIAL PRIMARY KEY, "email" TEXT NOT NULL UNIQUE, "role" "Role" NOT NULL DEFAULT 'USER');
CREATE TABLE "Post" ("id" BIGSERIAL PRIMARY KEY, "authorId" INTEGER NOT NULL REFERENCES "User"("id"),
  "title" TEXT NOT NULL, "meta" JSONB, "tags" TEXT[]);
CREATE INDEX "Post_authorId_idx" ON "Post" ("authorId");
CREATE VIEW "PostCount" AS SELECT "authorId", count(*) AS n FROM "Post" GROUP BY 1;
INSERT INTO "User" ("email", "role") SELECT 'u' || i || '@example.com',
  CASE WHEN i % 10 = 0 THEN 'ADMIN' ELSE 'USER' END::"Role" FROM generate_series(1, 200) i;
INSERT INTO "Post" ("authorId", "title", "meta", "tags") SELECT 1 + i % 200, 'title ' || i,
  jsonb_build_object('i', i), ARRAY['t' || i % 3, E'quote\'s \\ back'] FROM generate_series(1, 1000) i;
CREATE TABLE _prisma_migrations (
  id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ,
  migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ,
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0);
INSERT INTO _prisma_migrations VALUES
  ('11111111-1111-4111-8111-111111111111', repeat('a', 64), '2025-01-01 00:00:01+00', '20250101000000_init', NULL,
   NULL, '2025-01-01 00:00:00+00', 1),
  ('22222222-2222-4222-8222-222222222222', repeat('b', 64), NULL, '20250102000000_add_posts',
   'A migration failed to apply.', NULL, '2025-01-02 00:00:00+00', 0);
"""
# What happens after the backup: the failed migration is resolved, a later one adds a table and changes rows.
LATER = """
UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = '20250102000000_add_posts';
INSERT INTO _prisma_migrations VALUES ('33333333-3333-4333-8333-333333333333', repeat('c', 64), now(),
  '20250103000000_audit', NULL, NULL, now(), 1);
CREATE TABLE "Audit" ("id" SERIAL PRIMARY KEY, "what" TEXT);
INSERT INTO "Audit" ("what") VALUES ('x');
ALTER TABLE "User" ADD COLUMN "name" TEXT;
DELETE FROM "Post" WHERE id % 2 = 0;
UPDATE "User" SET "email" = 'changed' || id WHERE id < 10;
"""


@pytest.fixture(scope="module")
def template(pg_cluster):
    with seeded_database(pg_cluster, "app_rs", PASSWORD, SEED) as base:
        yield base


@pytest.fixture
def seeded(template):
    with database_copy(template) as db:
        yield db


def fingerprint(db: Database) -> dict:
    """Every table's columns, row count and content checksum, sequences, views and the schema ACL/comment."""
    prints = {}
    for (table,) in db.execute("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                               "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"):
        prints[table] = db.execute("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                                   "FROM %s t" % table)[0]
    prints["columns"] = db.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                                   "WHERE table_schema = 'public' ORDER BY 1, 2")
    for (seq,) in db.execute("SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1"):
        prints[seq] = db.execute("SELECT last_value, is_called FROM %s" % seq)[0]
    prints["view"] = db.execute('SELECT sum(n) FROM "PostCount"')
    prints["schema"] = db.execute("SELECT nspowner::regrole::text, nspacl::text, obj_description(oid, 'pg_namespace') "
                                  "FROM pg_namespace WHERE nspname = 'public'")
    return prints


def history(db: Database) -> list:
    return db.execute("SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, "
                      "applied_steps_count FROM _prisma_migrations ORDER BY started_at, id")


def backup(db: Database, backup_dir, **args) -> dict:
    result = run_module("pg_backup", dict({"database_url": db.url(), "backup_dir": str(backup_dir)}, **args))
    assert result.get("failed") is not True, result
    return result


def restore(db: Database, check_mode: bool = False, diff: bool = False, **args) -> dict:
    return run_module("pg_restore", dict({"database_url": db.url()}, **args), check_mode=check_mode, diff=diff)


def assert_no_secret(db: Database, *texts) -> None:
    from urllib.parse import quote
    for text in texts:
        blob = text if isinstance(text, str) else json.dumps(text, default=str)
        assert db.owner.password not in blob and quote(db.owner.password, safe="") not in blob


@pytest.mark.parametrize("fmt,extra", [("custom", {}), ("directory", {"jobs": 2}), ("plain", {})])
def test_each_format_restores_the_backup_exactly_after_later_changes(seeded, tmp_path, fmt, extra):
    original, original_history = fingerprint(seeded), history(seeded)
    taken = backup(seeded, tmp_path / "b", format=fmt, **extra)
    seeded.execute(LATER)
    assert fingerprint(seeded) != original and history(seeded) != original_history
    pre = backup(seeded, tmp_path / "b", prefix="pre-restore")

    result = restore(seeded, path=taken["path"], confirm=seeded.name, pre_restore_backup=pre["path"])

    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["verified"] is True and result["history_matches"] is True
    assert result["path"] == taken["path"] and result["format"] == fmt and result["database"] == seeded.name
    assert result["pre_restore_backup"] == pre["path"] and os.path.exists(pre["path"])
    assert fingerprint(seeded) == original  # the Audit table a later migration made is gone too
    assert history(seeded) == original_history
    manifest = json.loads(open(taken["manifest"], encoding="utf-8").read())
    assert [r[0] for r in history(seeded)] == [r["id"] for r in manifest["prisma_migrations"]["rows"]]
    assert_no_secret(seeded, result["_stdout"], result["_stderr"])

    # And the pre-restore backup undoes the restore.
    undo = restore(seeded, path=pre["path"], confirm=seeded.name)
    assert undo.get("failed") is not True, undo
    assert db_has_table(seeded, "Audit") and len(history(seeded)) == 3


def db_has_table(db: Database, name: str) -> bool:
    return db.execute("SELECT to_regclass(%s) IS NOT NULL", ('public."%s"' % name,))[0][0]


def test_backup_dir_restores_the_newest_backup_that_verifies(seeded, tmp_path):
    older = backup(seeded, tmp_path / "b")
    seeded.execute(LATER)
    newer = backup(seeded, tmp_path / "b")
    with open(newer["path"], "ab") as handle:  # damaged after it was taken
        handle.write(b"x")
    before = fingerprint(seeded)

    result = restore(seeded, backup_dir=str(tmp_path / "b"), confirm=seeded.name)

    assert result.get("failed") is not True, result
    assert result["path"] == older["path"]
    assert any(newer["path"] in n and "does not match its manifest" in n for n in result["notes"])
    assert fingerprint(seeded) != before and not db_has_table(seeded, "Audit")


@pytest.mark.parametrize("confirm", [None, "", "production", "%s "])
def test_without_the_right_confirm_it_refuses_and_changes_nothing(seeded, tmp_path, confirm):
    taken = backup(seeded, tmp_path / "b")
    seeded.execute(LATER)
    before, rows = fingerprint(seeded), history(seeded)
    args = {"path": taken["path"]}
    if confirm is not None:
        args["confirm"] = confirm % seeded.name if "%s" in confirm else confirm

    result = restore(seeded, **args)

    assert result["failed"] is True and result["code"] == "not_confirmed" and result["changed"] is False
    assert "Pass confirm=%s (restore_confirm=%s" % (seeded.name, seeded.name) in result["msg"]
    assert fingerprint(seeded) == before and history(seeded) == rows


def test_a_tampered_backup_is_refused_and_nothing_changes(seeded, tmp_path):
    taken = backup(seeded, tmp_path / "b", format="plain")
    seeded.execute(LATER)
    before = fingerprint(seeded)
    with open(taken["path"], "r+", encoding="utf-8") as handle:
        text = handle.read()
        handle.seek(0)
        handle.write(text.replace("u1@example.com", "u1@evil.example"))

    result = restore(seeded, path=taken["path"], confirm=seeded.name)

    assert result["failed"] is True and result["code"] == "checksum_mismatch"
    assert "does not match its manifest" in result["msg"] and "nothing was restored" in result["msg"]
    assert fingerprint(seeded) == before


def test_a_backup_without_manifest_or_of_another_database_is_refused(seeded, template, tmp_path):
    other = backup(template, tmp_path / "o")
    result = restore(seeded, path=other["path"], confirm=seeded.name)
    assert result["failed"] is True and result["code"] == "wrong_database"
    assert "is a backup of database %s, not of %s" % (template.name, seeded.name) in result["msg"]
    os.unlink(other["manifest"])
    result = restore(template, path=other["path"], confirm=template.name)
    assert result["failed"] is True and result["code"] == "no_manifest"
    result = restore(seeded, backup_dir=str(tmp_path / "empty"), confirm=seeded.name)
    assert result["failed"] is True and result["code"] == "no_backup" and "take one with pg_backup" in result["msg"]


def test_check_mode_shows_the_plan_without_confirm_and_writes_nothing(seeded, tmp_path):
    taken = backup(seeded, tmp_path / "b")
    seeded.execute(LATER)
    before, rows = fingerprint(seeded), history(seeded)
    listing = sorted(os.listdir(tmp_path / "b"))

    result = restore(seeded, check_mode=True, diff=True, backup_dir=str(tmp_path / "b"))

    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["path"] == taken["path"] and result["database"] == seeded.name
    assert result["history_matches"] is False
    assert any("needs confirm=%s" % seeded.name in n for n in result["notes"])
    assert any("drop schema public" in step for step in result["plan"])
    assert "20250103000000_audit applied" in result["diff"]["before"]
    assert "20250103000000_audit" not in result["diff"]["after"]
    assert "20250102000000_add_posts FAILED" in result["diff"]["after"]
    assert fingerprint(seeded) == before and history(seeded) == rows
    assert sorted(os.listdir(tmp_path / "b")) == listing


def test_a_schema_the_user_does_not_own_is_refused_before_anything(seeded, tmp_path):
    seeded.execute("CREATE SCHEMA other; CREATE TABLE other.t (x int)")
    taken = backup(seeded, tmp_path / "b")
    seeded.execute('ALTER SCHEMA other OWNER TO postgres; GRANT USAGE ON SCHEMA other TO "%s"; '
                   'DELETE FROM "Post"' % seeded.owner.name, superuser=True)
    before = fingerprint(seeded)

    result = restore(seeded, path=taken["path"], confirm=seeded.name)

    assert result["failed"] is True and result["code"] == "not_owner"
    assert "schema other is owned by postgres" in result["msg"]
    assert fingerprint(seeded) == before


def test_a_second_schema_is_restored_too(seeded, tmp_path):
    seeded.execute("CREATE SCHEMA other; CREATE TABLE other.t (x int); INSERT INTO other.t VALUES (1), (2)")
    original = fingerprint(seeded)
    taken = backup(seeded, tmp_path / "b")
    seeded.execute("INSERT INTO other.t VALUES (3); CREATE TABLE other.extra (y int)")

    result = restore(seeded, path=taken["path"], confirm=seeded.name)

    assert result.get("failed") is not True, result
    assert sorted(result["schemas"]) == ["other", "public"]
    assert fingerprint(seeded) == original


def test_prisma_lock_held_refuses_with_nothing_changed(seeded, tmp_path):
    taken = backup(seeded, tmp_path / "b")
    seeded.execute(LATER)
    before = fingerprint(seeded)
    holder = seeded.connect()
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(72707369)")
        result = restore(seeded, path=taken["path"], confirm=seeded.name)
    finally:
        holder.close()
    assert result["failed"] is True and result["code"] == "restore_failed"
    assert "advisory lock (72707369) is held" in result["msg"] and "nothing was changed" in result["msg"]
    assert fingerprint(seeded) == before


def test_an_app_session_holding_a_lock_times_out_with_nothing_changed(seeded, tmp_path):
    taken = backup(seeded, tmp_path / "b")
    seeded.execute(LATER)
    before = fingerprint(seeded)
    app = seeded.connect(autocommit=False)
    try:
        app.cursor().execute('SELECT count(*) FROM "User"')  # AccessShareLock until the transaction ends
        result = restore(seeded, path=taken["path"], confirm=seeded.name, lock_timeout=1)
    finally:
        app.close()
    assert result["failed"] is True and result["code"] == "restore_failed"
    assert "lock timeout" in result["msg"] and "stop the app" in result["msg"]
    assert fingerprint(seeded) == before


def _proc_files(name: str) -> dict:
    found = {}
    for path in glob.glob("/proc/[0-9]*/" + name):
        try:
            with open(path, "rb") as handle:
                found[path.split("/")[2]] = handle.read()
        except OSError:
            pass
    return found


def test_password_is_in_no_process_list_while_psql_runs(seeded, tmp_path):
    taken = backup(seeded, tmp_path / "b")
    seeded.execute(LATER)
    blocker = seeded.connect(autocommit=False)
    blocker.cursor().execute('SELECT count(*) FROM "User"')  # holds psql at DROP SCHEMA while we look
    seen = {}
    result = {}

    def run():
        result.update(restore(seeded, path=taken["path"], confirm=seeded.name, lock_timeout=30))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert wait_for(lambda: any(argv.startswith(b"/usr/lib/postgresql/15/bin/psql\0")
                                    for argv in _proc_files("cmdline").values()), timeout=30)
        seen = {"cmdline": _proc_files("cmdline"), "environ": _proc_files("environ")}
    finally:
        blocker.close()
        thread.join(60)
    assert result.get("failed") is not True, result
    secret = seeded.owner.password.encode()
    for kind, files in seen.items():
        for pid, blob in files.items():
            assert secret not in blob, "the password is in /proc/%s/%s" % (pid, kind)
    psql = [argv for argv in seen["cmdline"].values() if argv.startswith(b"/usr/lib/postgresql/15/bin/psql\0")]
    assert psql and b"PGPASSFILE" not in psql[0]
