"""Backups that cannot be turned against the host (issue 13), on a real PostgreSQL 15 with real files, real users
(`nobody`), real processes and SIGKILL:

- a backup directory, an ancestor, a backup or a manifest another user could have written is refused by pg_backup, its
  retention and pg_restore, with the chown/chmod that fixes it, and nothing is changed;
- a plain dump holding psql meta-commands (at a line start, after a statement, behind its own \\unrestrict) runs none of
  them: psql's \\restrict refuses them and the restore rolls back, while the same text as COPY data is restored as data;
- a module killed with SIGKILL while pg_dump runs leaves no file holding the password, on the host and container paths;
- reuse_within never returns a backup older than a later write, nor one whose manifest records no write position;
- a restore already in place changes nothing and runs no psql; any write since means a real restore.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.harness.modules import module_env, run_module
from tests.harness.pgcluster import Database, database_copy, seeded_database, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PASSWORD = "Tr:u@st/\\x'"
SEED = r"""
CREATE TABLE "User" ("id" SERIAL PRIMARY KEY, "email" TEXT NOT NULL UNIQUE, "note" TEXT);
INSERT INTO "User" ("email", "note") SELECT 'u' || i || '@example.com', 'note ' || i FROM generate_series(1, 300) i;
CREATE TABLE _prisma_migrations (
  id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ,
  migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ,
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0);
INSERT INTO _prisma_migrations VALUES
  ('11111111-1111-4111-8111-111111111111', repeat('a', 64), '2025-01-01 00:00:01+00', '20250101000000_init', NULL,
   NULL, '2025-01-01 00:00:00+00', 1);
ANALYZE;
"""
NOBODY = pwd.getpwnam("nobody")
PG_BIN = "/usr/lib/postgresql/15/bin"


@pytest.fixture(scope="module")
def template(pg_cluster):
    with seeded_database(pg_cluster, "app_tr", PASSWORD, SEED) as base:
        yield base


@pytest.fixture
def seeded(template):
    with database_copy(template) as db:
        yield db


def backup(db: Database, backup_dir, **args) -> dict:
    return run_module("pg_backup", dict({"database_url": db.url(), "backup_dir": str(backup_dir)}, **args))


def restore(db: Database, check_mode: bool = False, **args) -> dict:
    return run_module("pg_restore", dict({"database_url": db.url(), "confirm": db.name}, **args),
                      check_mode=check_mode)


def ok(result: dict) -> dict:
    assert result.get("failed") is not True, result
    return result


def refused(result: dict, code: str, *needles: str) -> None:
    assert result.get("failed") is True, result
    assert result.get("code") == code, result
    for needle in needles:
        assert needle in result["msg"], result["msg"]


def fingerprint(db: Database) -> list:
    return db.execute("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"User\" t")


def give_to_nobody(path) -> None:
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid, follow_symlinks=False)


def reseal(path: str) -> None:
    """Make the manifest match the file again, as whoever planted the file would."""
    manifest_path = path + ".manifest.json"
    manifest = json.loads(Path(manifest_path).read_text())
    data = Path(path).read_bytes()
    manifest.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    Path(manifest_path).write_text(json.dumps(manifest))


# ----------------------------------------------------------------------------------------------------------------
# 1. Trust: directory, ancestors, files, symlinks


@pytest.mark.parametrize("setup,fix", [
    ("owned_by_nobody", "chown root"),
    ("world_writable", "chmod go-w"),
    ("ancestor_owned_by_nobody", "chown root"),
])
def test_pg_backup_refuses_a_directory_another_user_could_write_and_changes_nothing(seeded, tmp_path, setup, fix):
    parent = tmp_path / "parent"
    parent.mkdir(mode=0o755)
    backup_dir = parent / "backups"
    backup_dir.mkdir(mode=0o755)
    if setup == "owned_by_nobody":
        give_to_nobody(backup_dir)
    elif setup == "world_writable":
        os.chmod(backup_dir, 0o777)
    else:
        give_to_nobody(parent)
    before = os.stat(backup_dir)

    result = backup(seeded, backup_dir)

    refused(result, "untrusted", fix, "not trusted", "nothing was changed")
    after = os.stat(backup_dir)
    assert (after.st_uid, after.st_mode) == (before.st_uid, before.st_mode)  # not chmodded, not chowned
    assert os.listdir(backup_dir) == []


def test_a_sticky_world_writable_ancestor_like_tmp_is_fine(seeded, tmp_path):
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    result = ok(backup(seeded, sticky / "backups"))
    assert stat.S_IMODE(os.stat(sticky / "backups").st_mode) == 0o700 and os.path.exists(result["path"])


def test_pg_restore_refuses_backups_another_user_could_have_written(seeded, tmp_path):
    backup_dir = tmp_path / "b"
    taken = ok(backup(seeded, backup_dir))
    seeded.execute("DELETE FROM \"User\" WHERE id > 100")
    before = fingerprint(seeded)

    # The directory handed to another user after the backup: neither path nor backup_dir is trusted.
    give_to_nobody(backup_dir)
    refused(restore(seeded, path=taken["path"]), "untrusted", "chown root %s" % backup_dir)
    refused(restore(seeded, backup_dir=str(backup_dir)), "untrusted", "is owned by nobody")
    os.chown(backup_dir, 0, 0)

    # A backup file of another user.
    give_to_nobody(taken["path"])
    refused(restore(seeded, path=taken["path"]), "untrusted", "chown root %s" % taken["path"])
    os.chown(taken["path"], 0, 0)

    # A manifest swapped for a symlink to one that says what the planter wants.
    elsewhere = tmp_path / "elsewhere.json"
    os.rename(taken["manifest"], elsewhere)
    os.symlink(elsewhere, taken["manifest"])
    refused(restore(seeded, path=taken["path"]), "untrusted", "is a symbolic link")
    os.unlink(taken["manifest"])
    os.rename(elsewhere, taken["manifest"])

    # A backup name that is a symlink stops pg_backup (reuse, retention) and pg_restore over backup_dir.
    link = backup_dir / ("prisma-%s-20200101T000000Z.dump" % seeded.name)
    os.symlink("/etc/passwd", link)
    refused(backup(seeded, backup_dir, keep_last=1), "untrusted", "is a symbolic link")
    refused(restore(seeded, backup_dir=str(backup_dir)), "untrusted", "is a symbolic link")
    os.unlink(link)

    assert fingerprint(seeded) == before  # nothing was restored by any of these
    ok(restore(seeded, path=taken["path"]))  # and once fixed, the same backup restores
    assert fingerprint(seeded) != before


# ----------------------------------------------------------------------------------------------------------------
# 2. A plain dump runs no psql meta-command


def _hostile(lines: list, variant: str, marker: str) -> list:
    """The real plain dump's lines with a meta-command planted where `variant` says. Without its own \\restrict
    lines (a file written by hand, or by a pg_dump older than 15.14), except where the planter uses its own key."""
    if variant != "own_unrestrict":
        lines = [line for line in lines if not line.startswith(("\\restrict ", "\\unrestrict "))]
    first_sql = next(i for i, line in enumerate(lines) if line.startswith("SET "))
    if variant == "line_start":
        planted = ["\\! touch %s\n" % marker]
    elif variant == "after_statement":
        planted = ["SELECT 1; \\! touch %s\n" % marker]
    elif variant == "pipe_output":
        planted = ["\\o |touch %s\n" % marker, "SELECT 1;\n", "\\o\n"]
    elif variant == "copy_program":
        planted = ["\\copy (SELECT 1) TO PROGRAM 'touch %s'\n" % marker]
    elif variant == "own_unrestrict":
        key = next(line.split()[1] for line in lines if line.startswith("\\restrict "))
        planted = ["\\unrestrict %s\n" % key, "\\! touch %s\n" % marker]
    else:
        raise AssertionError(variant)
    return lines[:first_sql] + planted + lines[first_sql:]


@pytest.mark.parametrize("variant", ["line_start", "after_statement", "pipe_output", "copy_program", "own_unrestrict"])
def test_a_plain_dump_with_meta_commands_runs_none_of_them(seeded, tmp_path, variant):
    taken = ok(backup(seeded, tmp_path / "b", format="plain"))
    marker = os.path.join(tempfile.gettempdir(), "prisma-ops-pwned-%s" % os.urandom(6).hex())
    lines = Path(taken["path"]).read_text().splitlines(keepends=True)
    Path(taken["path"]).write_text("".join(_hostile(lines, variant, marker)))
    reseal(taken["path"])
    seeded.execute("DELETE FROM \"User\" WHERE id > 100")
    before = fingerprint(seeded)

    result = restore(seeded, path=taken["path"])

    assert not os.path.exists(marker), "psql ran the planted command"
    refused(result, "meta_command_refused", "nothing was changed")
    assert fingerprint(seeded) == before


def test_meta_command_text_as_copy_data_is_restored_as_data(seeded, tmp_path):
    marker = os.path.join(tempfile.gettempdir(), "prisma-ops-pwned-%s" % os.urandom(6).hex())
    hostile = ["\\! touch %s" % marker, "x\n\\! touch %s\n" % marker, "\\o |touch %s" % marker, "\\."]
    for index, text in enumerate(hostile):
        seeded.execute("UPDATE \"User\" SET note = %s WHERE id = %s", (text, index + 1))
    wanted = fingerprint(seeded)
    taken = ok(backup(seeded, tmp_path / "b", format="plain"))
    seeded.execute("DELETE FROM \"User\"")

    ok(restore(seeded, path=taken["path"]))

    assert fingerprint(seeded) == wanted and not os.path.exists(marker)
    assert [r[0] for r in seeded.execute("SELECT note FROM \"User\" WHERE id <= 4 ORDER BY id")] == hostile


# ----------------------------------------------------------------------------------------------------------------
# 3. SIGKILL during pg_dump leaves no password on disk


def _escaped(secret: str) -> list:
    return [secret.encode(), secret.replace("\\", "\\\\").replace(":", "\\:").encode()]


def files_holding(secret: str, roots: list, since: float) -> list:
    """Regular files under `roots` changed since `since` that hold the secret (as is, or escaped for .pgpass)."""
    forms = _escaped(secret)
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or max(st.st_mtime, st.st_ctime) < since or st.st_size > 64 << 20:
                        continue
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                if any(form in data for form in forms):
                    found.append(path)
    return found


def _pids_of(argv0: str, needle: str) -> list:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path("/proc/%s/cmdline" % entry).read_bytes()
        except OSError:
            continue
        if argv.startswith(argv0.encode() + b"\0") and needle.encode() in argv:
            pids.append(int(entry))
    return pids


def _fake_container_exec(tmp_path) -> str:
    """A `docker exec` stand-in that runs the program on this host with the environment it was given (the real CLI
    copies each `-e NAME` from its own environment into the container)."""
    script = tmp_path / "fake-exec"
    script.write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do case "$1" in -i) shift;; -e|-w|-u) shift 2;; '
                      '*) shift; break;; esac; done\nexec "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("path_kind", ["host", "container"])
def test_sigkill_during_pg_dump_leaves_no_password_on_disk(seeded, tmp_path, path_kind):
    backup_dir = tmp_path / "b"
    args = {"database_url": seeded.url(), "backup_dir": str(backup_dir)}
    if path_kind == "container":
        args.update(container="db", container_exec=[_fake_container_exec(tmp_path)],
                    pg_dump_path="%s/pg_dump" % PG_BIN)
    payload = dict(args, _ansible_check_mode=False, _ansible_diff=False, _ansible_tmpdir=None,
                   _ansible_remote_tmp="/tmp")
    since = time.time() - 1
    # pg_dump blocks on this lock mid-dump: the moment to kill the module.
    holder = seeded.connect(autocommit=False, superuser=True)
    holder.cursor().execute('LOCK TABLE "User" IN ACCESS EXCLUSIVE MODE')
    module = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "ansible_collections.prisma_ops.migrate.plugins.modules.pg_backup"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=module_env())
    module.stdin.write(json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode())
    module.stdin.close()
    try:
        def waiting() -> bool:
            return bool(seeded.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = "
                "'prisma_ops.migrate/pg_backup' AND wait_event_type = 'Lock'", superuser=True))

        assert wait_for(lambda: waiting() or module.poll() is not None, timeout=60) and waiting(), \
            module.stderr.read().decode() if module.poll() is not None else "pg_dump never waited on the lock"
        dumps = _pids_of("%s/pg_dump" % PG_BIN, seeded.name)
        assert len(dumps) == 1
        os.kill(module.pid, signal.SIGKILL)
        module.wait(30)
        assert module.returncode == -signal.SIGKILL
        # The orphaned pg_dump is still running and still connected: the password must be nowhere on disk now.
        assert os.path.exists("/proc/%d" % dumps[0])
        assert files_holding(seeded.owner.password, [tempfile.gettempdir(), str(backup_dir)], since) == []
    finally:
        holder.rollback()
        holder.close()
        module.stdout.close()
        module.stderr.close()
    # Let the orphan finish; still nothing holds the password, and no backup appeared without its manifest.
    assert wait_for(lambda: not _pids_of("%s/pg_dump" % PG_BIN, seeded.name), timeout=60)
    assert files_holding(seeded.owner.password, [tempfile.gettempdir(), str(backup_dir)], since) == []
    assert [n for n in os.listdir(backup_dir) if not n.startswith(".")] == []


# ----------------------------------------------------------------------------------------------------------------
# 4. reuse_within: never a backup older than a later write


def test_reuse_within_never_returns_a_backup_older_than_a_later_write(pg_cluster, seeded, tmp_path):
    first = ok(backup(seeded, tmp_path, reuse_within="2h"))
    again = ok(backup(seeded, tmp_path, reuse_within="2h"))
    assert again["reused"] is True and again["path"] == first["path"]  # nothing written in between
    # A write in another database of the server moves the server's position, not this database's rows: reused.
    elsewhere = pg_cluster.create_database()
    try:
        elsewhere.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        assert ok(backup(seeded, tmp_path, reuse_within="2h"))["path"] == first["path"]
    finally:
        pg_cluster.drop_database(elsewhere.name)

    # 300 new rows (as after recover.yml and a new migration): the old dump is no longer the database.
    seeded.execute("INSERT INTO \"User\" (email) SELECT 'late' || i FROM generate_series(1, 300) i; ANALYZE")
    later = ok(backup(seeded, tmp_path, reuse_within="2h"))
    assert later["reused"] is False and later["path"] != first["path"]
    assert any(first["path"] in note and "before later writes" in note for note in later["notes"])
    assert ok(backup(seeded, tmp_path, reuse_within="2h"))["path"] == later["path"]

    # A new _prisma_migrations row is a write too.
    seeded.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES "
                   "('22222222-2222-4222-8222-222222222222', repeat('b', 64), '20250102000000_x')")
    assert ok(backup(seeded, tmp_path, reuse_within="2h"))["reused"] is False

    # A manifest that records no write position (taken by an older version) is never reused.
    newest = ok(backup(seeded, tmp_path, reuse_within="2h"))
    assert newest["reused"] is True
    manifest = json.loads(Path(newest["manifest"]).read_text())
    manifest.pop("position")
    manifest.pop("state")
    Path(newest["manifest"]).write_text(json.dumps(manifest))
    assert ok(backup(seeded, tmp_path, reuse_within="2h"))["reused"] is False


def test_reuse_within_while_transactions_run_during_the_dump(pg_cluster, seeded, tmp_path):
    """A busy server: transactions in progress while pg_dump takes its snapshot. One in another database does not
    stop the reuse; rows this database's open transaction commits after the dump always do, even when the row
    count stays the same."""
    elsewhere = pg_cluster.create_database()
    busy = elsewhere.connect(autocommit=False)
    try:
        # An open transaction with an id, then a later one that commits: the dump's snapshot lists the first as
        # running (xmin < xmax), so the server's position alone cannot prove anything.
        busy.cursor().execute("SELECT txid_current()")
        elsewhere.execute("CREATE TABLE t (x int)")
        first = ok(backup(seeded, tmp_path, reuse_within="2h"))
        assert json.loads(Path(first["manifest"]).read_text())["position"]["idle"] is False
        busy.commit()
        again = ok(backup(seeded, tmp_path, reuse_within="2h"))
        assert again["reused"] is True and again["path"] == first["path"], again

        # An UPDATE (no new row, the same count) in progress in this database while the next dump is taken.
        writer = seeded.connect(autocommit=False)
        try:
            writer.cursor().execute("UPDATE \"User\" SET note = 'during the dump' WHERE id = 7")
            elsewhere.execute("INSERT INTO t VALUES (1)")
            during = ok(backup(seeded, tmp_path, reuse_within="2h"))
            assert during["reused"] is True and during["path"] == first["path"]  # the update is not committed
            writer.commit()
        finally:
            writer.close()
        busy.commit()
        after = ok(backup(seeded, tmp_path, reuse_within="2h"))
        assert after["reused"] is False and after["path"] != first["path"], after
        assert any(first["path"] in note and "before later writes" in note for note in after["notes"])

        # A new dump taken while such an update is in progress is not reused once it commits.
        writer = seeded.connect(autocommit=False)
        try:
            writer.cursor().execute("UPDATE \"User\" SET note = 'second' WHERE id = 8")
            elsewhere.execute("INSERT INTO t VALUES (2)")
            racing = ok(backup(seeded, tmp_path, reuse_within="2h", schema_only=True))
            assert racing["reused"] is False
            writer.commit()
        finally:
            writer.close()
        final = ok(backup(seeded, tmp_path, reuse_within="2h", schema_only=True))
        assert final["reused"] is False and final["path"] != racing["path"], final
    finally:
        busy.close()
        pg_cluster.drop_database(elsewhere.name)


# ----------------------------------------------------------------------------------------------------------------
# 5. A restore already in place changes nothing


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_a_restore_already_in_place_is_a_no_op_until_something_is_written(pg_cluster, seeded, tmp_path, fmt):
    taken = ok(backup(seeded, tmp_path / "b", format=fmt))
    seeded.execute("DELETE FROM \"User\" WHERE id > 100")
    first = ok(restore(seeded, path=taken["path"]))
    assert first["changed"] is True and first["already_restored"] is False
    restored = fingerprint(seeded)
    record = json.loads(Path(taken["path"] + ".restored.json").read_text())
    assert record["sha256"] == taken["sha256"] and stat.S_IMODE(os.stat(taken["path"] + ".restored.json").st_mode) == 0o600

    # Prisma's lock held by another session: a real restore would fail on it, so success proves no psql ran.
    holder = seeded.connect(autocommit=True)
    holder.cursor().execute("SELECT pg_advisory_lock(72707369)")
    try:
        preview = ok(restore(seeded, check_mode=True, path=taken["path"]))
        second = ok(restore(seeded, path=taken["path"]))
    finally:
        holder.close()
    for result in (preview, second):
        assert result["changed"] is False and result["already_restored"] is True
        assert "already in place" in result["msg"] and "nothing written since" in result["msg"]
    assert fingerprint(seeded) == restored

    # Writes elsewhere on the server (another database; autovacuum's ANALYZE of pg_shdepend after the restore) move
    # the server's transaction position but write no row of this database: still in place.
    elsewhere = pg_cluster.create_database()
    try:
        elsewhere.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        assert ok(restore(seeded, path=taken["path"]))["already_restored"] is True
    finally:
        pg_cluster.drop_database(elsewhere.name)

    # A sequence moved by nextval() alone (no row written, no transaction id): a real restore.
    seeded.execute("SELECT nextval('\"User_id_seq\"')")
    assert ok(restore(seeded, path=taken["path"]))["already_restored"] is False
    assert ok(restore(seeded, path=taken["path"]))["already_restored"] is True

    # Any write since: a real restore, which puts the backup back.
    seeded.execute("UPDATE \"User\" SET note = 'changed' WHERE id = 1")
    third = ok(restore(seeded, path=taken["path"]))
    assert third["changed"] is True and third["already_restored"] is False
    assert fingerprint(seeded) == restored
