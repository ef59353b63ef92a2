"""pg_backup against real PostgreSQL 15 and the real pg_dump/pg_restore: every format restores to the same data,
reuse, retention, check mode, modes and owners, and every failure (disk full, unwritable directory, missing or too old
pg_dump, a pg_dump error) leaves nothing behind; the password is never in a process list nor in -vvv output."""

from __future__ import annotations

import glob
import grp
import json
import os
import pwd
import shlex
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.harness.modules import REPO, run_module
from tests.harness.pgcluster import Database, database_copy, seeded_database, wait_for
from tests.harness.unprivileged import run_python_as_nobody, shared_tmpdir

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

MARKER = "-- PostgreSQL database dump complete"
# A password that needs every escape: URL (@ : / ? %), .pgpass (: and \), conninfo (' and \).
HARD_PASSWORD = "Pw:x@y/z?%25\\q'" + os.urandom(4).hex()
SEED = r"""
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');
CREATE TABLE "User" (
  "id" SERIAL PRIMARY KEY, "email" TEXT NOT NULL UNIQUE, "role" "Role" NOT NULL DEFAULT 'USER',
  "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE "Post" (
  "id" BIGSERIAL PRIMARY KEY, "authorId" INTEGER NOT NULL REFERENCES "User"("id"), "title" TEXT NOT NULL,
  "body" TEXT, "meta" JSONB, "blob" BYTEA, "score" NUMERIC(12, 4), "tags" TEXT[]);
CREATE INDEX "Post_authorId_idx" ON "Post" ("authorId");
CREATE VIEW "PostCount" AS SELECT "authorId", count(*) AS n FROM "Post" GROUP BY 1;
INSERT INTO "User" ("email", "role", "createdAt")
  SELECT 'user' || i || '@example.com', CASE WHEN i % 10 = 0 THEN 'ADMIN' ELSE 'USER' END::"Role",
         timestamptz '2025-01-01' + i * interval '1 minute'
  FROM generate_series(1, 500) i;
INSERT INTO "Post" ("authorId", "title", "body", "meta", "blob", "score", "tags")
  SELECT 1 + i % 500, 'title ' || i, repeat(md5(i::text), 1 + i % 5), jsonb_build_object('i', i, 'odd', i % 2 = 1),
         decode(md5(i::text), 'hex'), i / 7.0, ARRAY['t' || i % 3, E'quote\'s \\ back']
  FROM generate_series(1, 3000) i;
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


# ----------------------------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def seeded_template(pg_cluster):
    """A database with a varied dataset (enum, jsonb, bytea, arrays, numeric, FKs, a view, _prisma_migrations),
    owned by a role whose password needs every kind of escaping."""
    with seeded_database(pg_cluster, "app_bk", HARD_PASSWORD, SEED) as base:
        yield base


@pytest.fixture
def seeded(seeded_template):
    with database_copy(seeded_template) as db:
        yield db


def fingerprint(db: Database) -> dict:
    """Row count and an order-independent checksum of every table, plus sequence positions."""
    tables = [r[0] for r in db.execute(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
    prints = {}
    for table in tables:
        prints[table] = db.execute("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                                   "FROM %s t" % table)[0]
    for (seq,) in db.execute("SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1"):
        prints[seq] = db.execute("SELECT last_value, is_called FROM %s" % seq)[0]
    prints["view"] = db.execute('SELECT sum(n) FROM "PostCount"')[0]
    return prints


def backup(db: Database, backup_dir, check_mode: bool = False, **args) -> dict:
    params = {"database_url": db.url(), "backup_dir": str(backup_dir)}
    params.update(args)
    return run_module("pg_backup", params, check_mode=check_mode)


def restore_into_fresh(db: Database, result: dict) -> Database:
    """Run the returned restore_command, pointed at a new empty database of the same owner."""
    fresh = db.cluster.create_database(owner=db.owner)
    argv = [("--dbname=%s" % fresh.name) if a.startswith("--dbname=") else a for a in shlex.split(result["restore_command"])]
    assert argv[0].endswith("pg_restore" if result["format"] != "plain" else "psql")
    proc = subprocess.run(argv, env=dict(os.environ, PGPASSWORD=db.owner.password), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return fresh


def entries(directory) -> list:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def assert_no_secret(db: Database, *texts) -> None:
    from urllib.parse import quote
    for text in texts:
        blob = text if isinstance(text, str) else json.dumps(text, default=str)
        assert db.owner.password not in blob
        assert quote(db.owner.password, safe="") not in blob


def failed(result: dict) -> bool:
    return result.get("failed") is True and result["_rc"] != 0


# ----------------------------------------------------------------------------------------------------------------
# Each format restores to the same data


@pytest.mark.parametrize("fmt,extra", [("custom", {}), ("plain", {}), ("directory", {"jobs": 2, "compress": 9})])
def test_each_format_restores_into_a_fresh_database_with_identical_data(seeded, tmp_path, fmt, extra):
    source = fingerprint(seeded)
    assert source['public."Post"'][0] == 3000 and source['public."User"'][0] == 500
    backup_dir = tmp_path / "backups"

    result = backup(seeded, backup_dir, format=fmt, **extra)

    assert result["changed"] is True and result["reused"] is False, result
    path = result["path"]
    ext = {"custom": "dump", "plain": "sql", "directory": "dir"}[fmt]
    assert os.path.basename(path).startswith("prisma-%s-" % seeded.name) and path.endswith("." + ext)
    assert entries(backup_dir) == sorted([os.path.basename(path), os.path.basename(path) + ".manifest.json"])
    # Private: directory 0700, every file 0600 (inside a directory backup too).
    assert mode(backup_dir) == 0o700
    assert mode(result["manifest"]) == 0o600
    if fmt == "directory":
        assert mode(path) == 0o700 and len(os.listdir(path)) >= 3
        assert all(mode(os.path.join(path, f)) == 0o600 for f in os.listdir(path))
        assert result["restore_command"].count("--jobs=2") == 1
    else:
        assert mode(path) == 0o600
    if fmt == "plain":
        assert MARKER in Path(path).read_text()[-200:]
        assert result["verification"]["method"] == "completion marker"
    else:
        assert result["verification"]["method"] == "pg_restore --list" and result["verification"]["toc_entries"] > 10

    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["sha256"] == result["sha256"] and manifest["size"] == result["size"] > 0
    if fmt != "directory":
        import hashlib
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == result["sha256"]
        assert os.path.getsize(path) == result["size"]
    assert manifest["database"] == seeded.name and manifest["format"] == fmt and manifest["verified"] is True
    assert manifest["server_version"].startswith("15.") and manifest["pg_dump_version"].startswith("pg_dump (PostgreSQL) 15.")
    assert manifest["pg_dump_path"] == "/usr/lib/postgresql/15/bin/pg_dump"
    assert manifest["duration"] >= 0 and manifest["snapshot"] is True
    rows = manifest["prisma_migrations"]["rows"]
    assert [(r["migration_name"], r["finished_at"] is not None) for r in rows] == [
        ("20250101000000_init", True), ("20250102000000_add_posts", False)]
    assert_no_secret(seeded, result["_stdout"], Path(result["manifest"]).read_text(), result["restore_command"])

    restored = restore_into_fresh(seeded, result)
    try:
        assert fingerprint(restored) == source
    finally:
        seeded.cluster.drop_database(restored.name)


def test_manifest_rows_are_those_of_the_dumped_snapshot(seeded, tmp_path):
    """The history in the manifest and the _prisma_migrations rows inside the dump are the same rows."""
    result = backup(seeded, tmp_path / "b", format="plain")
    manifest = json.loads(Path(result["manifest"]).read_text())
    dumped = Path(result["path"]).read_text()
    for row in manifest["prisma_migrations"]["rows"]:
        assert row["id"] in dumped
    assert manifest["prisma_migrations"]["table_exists"] is True


# ----------------------------------------------------------------------------------------------------------------
# Reuse, retention, check mode


def test_reuse_within_returns_the_same_verified_backup_unchanged(seeded, tmp_path):
    first = backup(seeded, tmp_path, reuse_within="2h")
    assert first["changed"] is True and first["reused"] is False

    again = backup(seeded, tmp_path, reuse_within="2h")
    assert again["changed"] is False and again["reused"] is True
    assert (again["path"], again["sha256"], again["size"]) == (first["path"], first["sha256"], first["size"])
    assert again["restore_command"] == first["restore_command"]
    assert len(entries(tmp_path)) == 2

    # Another selection (schema only, or another format) is not the same backup.
    schema = backup(seeded, tmp_path, reuse_within="2h", schema_only=True)
    assert schema["reused"] is False and schema["changed"] is True and schema["path"] != first["path"]
    # Without reuse_within: always a new one.
    fresh = backup(seeded, tmp_path)
    assert fresh["reused"] is False and fresh["path"] not in (first["path"], schema["path"])

    # A backup whose bytes no longer match its manifest is never reused.
    with open(fresh["path"], "ab") as handle:
        handle.write(b"x")
    reuse = backup(seeded, tmp_path, reuse_within="2h")
    assert reuse["reused"] is True and reuse["path"] == first["path"]
    assert any(fresh["path"] in note for note in reuse["notes"])


def test_check_mode_writes_nothing_and_predicts_the_run(seeded, tmp_path):
    missing = tmp_path / "not" / "yet"
    preview = backup(seeded, missing, check_mode=True)
    assert preview["changed"] is True and preview["reused"] is False and preview["size"] is None
    assert preview["path"].startswith(str(missing) + "/prisma-%s-" % seeded.name)
    assert not (tmp_path / "not").exists()

    backup_dir = tmp_path / "b"
    # Schema-only backups: another selection than the run below, which therefore takes a new one and (with
    # reuse_within) records the database's state, so the reuse preview holds while the cluster is written.
    taken = [backup(seeded, backup_dir, schema_only=True)["path"] for attempt in range(3)]
    before = entries(backup_dir)
    preview = backup(seeded, backup_dir, check_mode=True, keep_last=2, reuse_within="1h")
    assert entries(backup_dir) == before and preview["reused"] is False
    assert preview["deleted"] == taken[:2][::-1] or sorted(preview["deleted"]) == sorted(taken[:2])
    real = backup(seeded, backup_dir, keep_last=2, reuse_within="1h")
    assert real["reused"] is False
    assert sorted(real["deleted"]) == sorted(preview["deleted"])

    reuse_preview = backup(seeded, backup_dir, check_mode=True, reuse_within="1h")
    assert reuse_preview["reused"] is True and reuse_preview["changed"] is False
    assert reuse_preview["path"] == real["path"]


def test_space_factor_refuses_a_backup_the_disk_cannot_hold_before_writing_anything(seeded, tmp_path):
    size = seeded.execute("SELECT pg_database_size(current_database())")[0][0]
    backup_dir = tmp_path / "b"
    kept = backup(seeded, backup_dir, schema_only=True)  # another selection: never reused below
    before = entries(backup_dir)
    missing = tmp_path / "not" / "yet"

    for target, where in ((backup_dir, backup_dir), (missing, tmp_path)):
        for check_mode in (True, False):
            refused = backup(seeded, target, check_mode=check_mode, space_factor=1e12, reuse_within="1h")
            assert failed(refused) and refused["code"] == "no_space", refused
            assert refused["msg"].startswith("not enough free disk for the backup: need ")
            # The size is the module's own reading: autovacuum may add a page (FSM, VM) since ours.
            assert "(database %s is %s, times space_factor 1000000000000.0), have " % (
                seeded.name, bk_format_size(refused["database_size"])) in refused["msg"]
            assert refused["msg"].endswith(" in %s. Nothing was changed; free space there, or point backup_dir at a "
                                           "larger disk" % where), refused["msg"]
            assert abs(refused["database_size"] - size) < 1024 ** 2, (refused["database_size"], size)
            assert abs(refused["free_bytes"] - shutil_disk_free(where)) < 64 * 1024 ** 2
    assert entries(backup_dir) == before and mode(backup_dir) == 0o700
    assert not (tmp_path / "not").exists()

    # Factor 0: any disk will do, and the figures are returned.
    passed = backup(seeded, missing, space_factor=0)
    assert passed["changed"] is True and passed["reused"] is False and os.path.isfile(passed["path"])
    assert abs(passed["database_size"] - size) < 1024 ** 2 and passed["free_bytes"] > 0
    assert kept["path"] in [str(backup_dir / e) for e in entries(backup_dir)]
    # Unset: no check, no figures.
    plain = backup(seeded, backup_dir, check_mode=True)
    assert "free_bytes" not in plain and "database_size" not in plain


def test_a_reusable_backup_needs_no_free_space(seeded, tmp_path):
    first = backup(seeded, tmp_path, reuse_within="2h", space_factor=0)
    assert first["reused"] is False and first["database_size"] > 0
    before = entries(tmp_path)

    for check_mode in (True, False):
        again = backup(seeded, tmp_path, check_mode=check_mode, reuse_within="2h", space_factor=1e12)
        assert again["reused"] is True and again["changed"] is False and again["path"] == first["path"], again
        assert "free_bytes" not in again and "database_size" not in again
    assert entries(tmp_path) == before


def bk_format_size(size: int) -> str:
    """Jinja's filesizeformat(true), which the message's sizes follow."""
    from jinja2.filters import do_filesizeformat
    return do_filesizeformat(size, True)


def test_retention_deletes_only_its_own_backups_and_never_the_new_one(seeded, tmp_path):
    backup_dir = tmp_path / "b"
    # Three other selections (none reusable below), so the backup taken next is a new one whatever the cluster does.
    old = [backup(seeded, backup_dir, **args)["path"]
           for args in ({"schema_only": True}, {"format": "plain"}, {"format": "directory"})]
    # Look-alikes retention must never touch: no manifest, another prefix, a foreign manifest, a temporary name.
    stamp = "20200101T000000Z"
    decoys = {
        "prisma-%s-%s.dump" % (seeded.name, stamp): b"not ours, no manifest",
        "other-%s-%s.dump" % (seeded.name, stamp): b"another prefix",
        "prisma-%s-20200102T000000Z.dump" % seeded.name: b"manifest of another database",
        ".prisma-%s-%s.dump.tmp-abcd" % (seeded.name, stamp): b"someone's temporary file",
        "notes.txt": b"operator notes",
    }
    for name, content in decoys.items():
        (backup_dir / name).write_bytes(content)
    (backup_dir / ("prisma-%s-20200102T000000Z.dump.manifest.json" % seeded.name)).write_text(json.dumps(
        {"tool": "prisma_ops.migrate.pg_backup", "file": "prisma-%s-20200102T000000Z.dump" % seeded.name,
         "database": "someone_else", "finished_at": "2020-01-02T00:00:00+00:00"}))

    # reuse_within records the database's state, so the reuse below holds while other databases of the cluster
    # are written (by the tests beside this one).
    result = backup(seeded, backup_dir, keep_last=2, reuse_within="1h")

    assert result["changed"] is True and result["reused"] is False
    assert sorted(result["deleted"]) == sorted(old[:2])
    names = entries(backup_dir)
    for path in old[:2]:
        assert os.path.basename(path) not in names and os.path.basename(path) + ".manifest.json" not in names
    for path in (old[2], result["path"]):
        assert os.path.basename(path) in names and os.path.basename(path) + ".manifest.json" in names
    for name in decoys:
        assert name in names

    # max_age: a backup whose manifest says it finished three days ago goes; the rest stay.
    manifest_path = old[2] + ".manifest.json"
    manifest = json.loads(Path(manifest_path).read_text())
    manifest["finished_at"] = "2020-01-01T00:00:00+00:00"
    Path(manifest_path).write_text(json.dumps(manifest))
    aged = backup(seeded, backup_dir, max_age="1d", reuse_within="1h")
    assert aged["reused"] is True and aged["path"] == result["path"]
    assert aged["deleted"] == [old[2]] and aged["changed"] is True
    assert not os.path.exists(old[2]) and os.path.exists(result["path"])
    for name in decoys:
        assert (backup_dir / name).exists()


def test_owner_group_and_modes(seeded, tmp_path):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    backup_dir = tmp_path / "b"
    backup_dir.mkdir(mode=0o755)
    os.chmod(backup_dir, 0o755)

    result = backup(seeded, backup_dir, format="directory", owner="nobody", group=group)

    assert result["changed"] is True, result
    for path in [backup_dir, result["path"], result["manifest"]] + glob.glob(result["path"] + "/*"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), path
        assert stat.S_IMODE(st.st_mode) == (0o700 if stat.S_ISDIR(st.st_mode) else 0o600), path

    unknown = backup(seeded, tmp_path / "c", owner="no-such-user-xyz")
    assert failed(unknown) and "owner 'no-such-user-xyz' is not a user" in unknown["msg"]
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------------------------------------------
# Failures leave nothing behind


@pytest.fixture
def tiny_fs(tmp_path):
    """A 3 MB tmpfs, unmounted whatever happens."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "mounting a tmpfs needs root here: %s" % proc.stderr
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture(scope="module")
def big_db(pg_cluster):
    """About 9 MB of incompressible-ish text: more than the tiny filesystem holds, in any format."""
    db = pg_cluster.create_database()
    db.execute("CREATE TABLE blob AS SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) AS v "
               "FROM generate_series(1, 90000) i")
    yield db
    pg_cluster.drop_database(db.name)


@pytest.mark.parametrize("fmt,extra", [("plain", {}), ("custom", {"compress": 0})])
def test_disk_full_fails_cleanly_and_leaves_nothing(big_db, tiny_fs, fmt, extra):
    result = backup(big_db, tiny_fs, format=fmt, **extra)

    assert failed(result), result
    assert result["code"] == "pg_dump_failed"
    assert "No space left on device" in result["msg"] and "pg_dump" in result["msg"]
    assert "nothing was written" in result["msg"]
    assert entries(tiny_fs) == []  # no final file, no manifest, no temporary file
    assert_no_secret(big_db, result["_stdout"])
    assert shutil_disk_free(tiny_fs) > 2_900_000  # and the space is given back


def shutil_disk_free(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_unwritable_directory_as_an_unprivileged_user(pg_cluster):
    root_dir = shared_tmpdir()  # 0755 root: nobody can traverse, not write
    code = (
        "from ansible_collections.prisma_ops.migrate.plugins.module_utils.backup import BackupOptions, run_backup\n"
        "from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import parse_database_url\n"
        "from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError\n"
        "for d in (%r, %r):\n"
        "    try:\n"
        "        run_backup(parse_database_url('postgresql://app:pw@127.0.0.1:%d/app'), "
        "BackupOptions.from_params({'backup_dir': d}))\n"
        "    except PrismaOpsError as exc:\n"
        "        print('ERROR', exc.details.get('code'), exc.msg)\n"
    ) % (root_dir, os.path.join(root_dir, "new", "backups"), pg_cluster.port)

    proc = run_python_as_nobody(code)

    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == 2, proc.stdout + proc.stderr
    assert lines[0].startswith("ERROR unwritable backup_dir %s is not writable by nobody" % root_dir)
    assert lines[1].startswith("ERROR unwritable cannot create backup_dir")
    assert "is not writable by nobody" in lines[1]
    assert os.listdir(root_dir) == []


def test_missing_pg_dump_binary(seeded, tmp_path):
    result = backup(seeded, tmp_path / "b", pg_dump_path=str(tmp_path / "nowhere" / "pg_dump"))
    assert failed(result)
    assert "pg_dump_path %s does not exist on this host" % (tmp_path / "nowhere" / "pg_dump") in result["msg"]
    assert not (tmp_path / "b").exists()


def test_older_pg_dump_is_refused_naming_both_versions(seeded, tmp_path):
    # Only the refusal is under test here; the real pg_dump is used everywhere else.
    fake = tmp_path / "pg11" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 11.22'\n")
    fake.chmod(0o755)

    result = backup(seeded, tmp_path / "b", pg_dump_path=str(fake))

    assert failed(result) and result["code"] == "version_mismatch"
    assert "the server runs PostgreSQL 15." in result["msg"]
    assert "%s (11.22)" % fake in result["msg"]
    assert "apt-get install postgresql-client-15" in result["msg"]
    assert not (tmp_path / "b").exists()


def test_pg_dump_error_is_reported_in_its_own_words_and_leaves_nothing(seeded, tmp_path):
    # A table the app's role may not read: pg_dump fails on LOCK TABLE, as it would on a real host.
    seeded.execute("CREATE TABLE secret_admin (x int)", superuser=True)
    backup_dir = tmp_path / "b"

    result = backup(seeded, backup_dir)

    assert failed(result) and result["code"] == "pg_dump_failed", result
    assert "pg_dump failed (exit 1): pg_dump: error: query failed: ERROR:  permission denied for table secret_admin" \
        in result["msg"]
    assert "permission denied" in result["stderr"] and result["rc"] == 1
    assert result["cmd"][0] == "/usr/lib/postgresql/15/bin/pg_dump"
    assert entries(backup_dir) == []
    assert_no_secret(seeded, result["_stdout"], result["_stderr"])

    nothing = backup(seeded, backup_dir, tables=["no_such_table"])
    assert failed(nothing) and "pg_dump: error: no matching tables were found" in nothing["msg"]
    assert entries(backup_dir) == []


@pytest.mark.parametrize("args,needle", [
    ({"format": "custom", "jobs": 2}, "jobs=2 needs format=directory"),
    ({"format": "plain", "compress": 5}, "format=plain is uncompressed SQL"),
    ({"compress": 12}, "compress must be a level from 0 (none) to 9"),
    ({"reuse_within": "2 hours"}, "reuse_within='2 hours' is not a duration"),
    ({"max_age": "0"}, "max_age must be longer than 0 seconds"),
    ({"keep_last": 0}, "keep_last must be 1 or more"),
    ({"prefix": "../etc"}, "prefix '../etc' is not usable in a file name"),
    ({"format": "tar"}, "value of format must be one of: custom, plain, directory"),
    ({"space_factor": -1}, "space_factor=-1.0 is not usable: give a number 0 or more"),
])
def test_bad_input_is_one_clear_error_before_anything_runs(seeded, tmp_path, args, needle):
    result = backup(seeded, tmp_path / "b", **args)
    assert failed(result) and needle in result["msg"], result["msg"]
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------------------------------------------
# The password: never in a process list, never in -vvv output


def _proc_files(name: str) -> dict:
    found = {}
    for path in glob.glob("/proc/[0-9]*/" + name):
        try:
            with open(path, "rb") as handle:
                found[path.split("/")[2]] = handle.read()
        except OSError:
            continue  # the process ended meanwhile
    return found


def test_password_is_in_no_process_list_while_pg_dump_runs(seeded, tmp_path):
    secret = seeded.owner.password.encode()
    backup_dir = tmp_path / "b"
    # Hold a lock pg_dump must wait for (its ACCESS SHARE against our ACCESS EXCLUSIVE): it blocks mid-dump.
    holder = seeded.connect(autocommit=False, superuser=True)
    holder.cursor().execute('LOCK TABLE "Post" IN ACCESS EXCLUSIVE MODE')
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(backup(seeded, backup_dir)))
    worker.start()
    try:
        def waiting() -> bool:
            return bool(seeded.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = "
                "'prisma_ops.migrate/pg_backup' AND wait_event_type = 'Lock'", superuser=True))

        wait_for(lambda: waiting() or not worker.is_alive(), timeout=30)
        assert waiting(), "pg_dump never reached the lock: %s" % outcome.get("msg")
        cmdlines = _proc_files("cmdline")
        environs = _proc_files("environ")
        dumps = [pid for pid, argv in cmdlines.items() if argv.startswith(b"/usr/lib/postgresql/15/bin/pg_dump\0")
                 and seeded.name.encode() in argv]
        assert len(dumps) == 1, "no running pg_dump found"
        pid = dumps[0]
        env = dict(item.split(b"=", 1) for item in environs[pid].split(b"\0") if b"=" in item)
        assert b"PGPASSWORD" not in env
        # The passfile is an inherited memfd: /dev/fd/N in pg_dump, a 0600 regular file in memory, on no file system.
        passfile = env[b"PGPASSFILE"].decode()
        assert passfile.startswith("/dev/fd/")
        held = "/proc/%s/fd/%s" % (pid, passfile.rsplit("/", 1)[1])
        assert os.readlink(held).startswith("/memfd:prisma-ops-pgpass")
        assert stat.S_ISREG(os.stat(held).st_mode) and stat.S_IMODE(os.stat(held).st_mode) == 0o600
        assert secret in Path(held).read_bytes().replace(b"\\:", b":").replace(b"\\\\", b"\\")
        for proc_id, argv in cmdlines.items():
            assert secret not in argv, "password in the argv of pid %s" % proc_id
        for proc_id, environ in environs.items():
            assert secret not in environ, "password in the environment of pid %s" % proc_id
    finally:
        holder.rollback()
        holder.close()
        worker.join(120)
    assert outcome.get("changed") is True, outcome


def test_ansible_vvv_output_never_contains_the_password(seeded, tmp_path):
    """A real `ansible` ad-hoc run at -vvv, success and failure; the URL comes from a vars file, not argv."""
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump({"url": seeded.url(), "ansible_python_interpreter": sys.executable}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    ansible = str(Path(sys.executable).parent / "ansible")
    outputs = []
    for extra, expect_rc in (({}, 0), ({"tables": ["no_such_table"]}, 2)):
        args = dict({"database_url": "{{ url }}", "backup_dir": str(tmp_path / "b")}, **extra)
        proc = subprocess.run([ansible, "localhost", "-c", "local", "-m", "prisma_ops.migrate.pg_backup", "-a",
                               json.dumps(args), "-e", "@%s" % vars_file, "-vvv"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == expect_rc, proc.stdout + proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    assert "restore_command" in outputs[0] and "no matching tables were found" in outputs[1]
    assert_no_secret(seeded, *outputs)
