"""pg_backup's decisions as plain functions: durations, options, names, pg_dump choice, argv and secrets,
restore commands, reuse and retention over real files in a temporary directory."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils import backup as bk
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import parse_database_url
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

pytestmark = pytest.mark.unit

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
POSITION = {"xmin": 740, "xmax": 740, "idle": True, "wal_lsn": "0/1922000"}
HISTORY = {"schema": "public", "table_exists": True, "rows": [{"id": "1", "migration_name": "init"}]}
URL = "postgresql://app:s3cr%3At%40pw@db.internal:5433/shop?schema=app&sslmode=require&connection_limit=5"


@pytest.mark.parametrize("text,seconds", [
    ("2h", 7200), ("30m", 1800), ("1d12h", 129600), ("1w", 604800), ("90", 90), ("45s", 45), (" 1h 30m ", 5400),
    (120, 120), ("0", 0), (None, None), ("", None),
])
def test_durations(text, seconds):
    assert bk.parse_duration(text, "reuse_within") == seconds


@pytest.mark.parametrize("text", ["2 hours", "h", "1x", "-5m", "1.5h", "2h-", True])
def test_bad_durations_name_the_option(text):
    with pytest.raises(PrismaOpsError, match="reuse_within"):
        bk.parse_duration(text, "reuse_within")


def test_options_defaults_and_validation():
    opts = bk.BackupOptions.from_params({"backup_dir": "/srv/b/", "reuse_within": "0"})
    assert (opts.backup_dir, opts.prefix, opts.format, opts.extension, opts.reuse_within) == (
        "/srv/b", "prisma", "custom", "dump", None)
    assert bk.BackupOptions.from_params({"backup_dir": "/b", "format": "directory", "jobs": 4}).jobs == 4
    for params, needle in (
        ({"backup_dir": " "}, "backup_dir is empty"),
        ({"backup_dir": "/b", "jobs": 2}, "needs format=directory"),
        ({"backup_dir": "/b", "jobs": 0, "format": "directory"}, "jobs must be 1 or more"),
        ({"backup_dir": "/b", "format": "plain", "compress": 1}, "format=plain is uncompressed"),
        ({"backup_dir": "/b", "compress": -1}, "compress must be a level"),
        ({"backup_dir": "/b", "keep_last": 0}, "keep_last must be 1 or more"),
        ({"backup_dir": "/b", "prefix": "a/b"}, "not usable in a file name"),
        ({"backup_dir": "/b", "prefix": ".hidden"}, "not usable in a file name"),
        ({"backup_dir": "/b", "tables": [""]}, "tables has an empty table pattern"),
    ):
        with pytest.raises(PrismaOpsError, match=needle.replace(".", r"\.")):
            bk.BackupOptions.from_params(params)


def test_names_and_pattern():
    name = bk.backup_name("prisma", "shop", NOW, "dump")
    assert name == "prisma-shop-20250304T050607Z.dump"
    assert bk.safe_name("my db/../x") == "my_db_.._x" and bk.safe_name("..") == "_"
    pattern = bk.name_pattern("prisma", "shop")
    assert pattern.match(name) and pattern.match("prisma-shop-20250304T050607Z.dir")
    for other in ("prisma-shop-20250304T050607Z.dump.manifest.json", ".prisma-shop-20250304T050607Z.dump.tmp-1a2b",
                  "prisma-shop2-20250304T050607Z.dump", "nightly-shop-20250304T050607Z.dump",
                  "prisma-shop-20250304T050607Z.tar", "prisma-shop-latest.dump"):
        assert not pattern.match(other), other


def test_next_free_name_never_reuses_a_timestamp_in_any_format(tmp_path):
    (tmp_path / "prisma-shop-20250304T050607Z.sql").write_text("x")
    (tmp_path / "prisma-shop-20250304T050608Z.dir.manifest.json").write_text("{}")
    with bk.TrustedDir(str(tmp_path), bk.trusted_uids()) as trusted:
        assert bk.next_free_name(trusted, "prisma", "shop", NOW, "dump") == "prisma-shop-20250304T050609Z.dump"
    assert bk.next_free_name(None, "prisma", "shop", NOW, "dump") == "prisma-shop-20250304T050607Z.dump"


@pytest.mark.parametrize("text,version", [
    ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", (15, 18)), ("pg_dump (PostgreSQL) 17.0", (17, 0)),
    ("pg_dump (PostgreSQL) 9.6.24", (9, 6)), ("pg_dump (PostgreSQL) 18beta1", (18, 0)), ("bash 5.2", None),
])
def test_tool_versions(text, version):
    assert bk.parse_tool_version(text) == version


def test_server_major():
    assert bk.server_major(150018) == (15,) and bk.server_major(170000) == (17,) and bk.server_major(90624) == (9, 6)


def test_pg_dump_choice_prefers_same_major_then_oldest_newer():
    found = [("/usr/lib/postgresql/17/bin/pg_dump", (17, 2)), ("/usr/lib/postgresql/15/bin/pg_dump", (15, 18)),
             ("/usr/lib/postgresql/16/bin/pg_dump", (16, 6)), ("/usr/bin/pg_dump", (17, 2))]
    assert bk.choose_pg_dump(found, (15,))[0] == "/usr/lib/postgresql/15/bin/pg_dump"
    assert bk.choose_pg_dump(found, (14,))[0] == "/usr/lib/postgresql/15/bin/pg_dump"
    assert bk.choose_pg_dump(found, (9, 6))[0] == "/usr/lib/postgresql/15/bin/pg_dump"
    assert bk.choose_pg_dump(found, (16,))[0] == "/usr/lib/postgresql/16/bin/pg_dump"
    assert bk.choose_pg_dump(found, (18,)) is None
    message = bk.mismatch_message("18.1", (18,), found[:1])
    assert "PostgreSQL 18.1" in message and "/usr/lib/postgresql/17/bin/pg_dump (17.2)" in message
    assert "apt-get install postgresql-client-18" in message and "pg_dump_path" in message


def test_pg_dump_argv_has_no_password_and_every_option():
    spec = parse_database_url(URL)
    opts = bk.BackupOptions.from_params({"backup_dir": "/b", "format": "directory", "jobs": 3, "compress": 4,
                                         "schema_only": True, "tables": ["public.users"], "exclude_tables": ["audit*"]})
    argv = bk.pg_dump_argv({"pg_dump": "/usr/lib/postgresql/15/bin/pg_dump"}, opts, spec, "/b/.tmp", "00000003-1")
    assert argv[:4] == ["/usr/lib/postgresql/15/bin/pg_dump", "--format=d", "--file=/b/.tmp", "--no-password"]
    assert argv[4] == ("--dbname=application_name='prisma_ops.migrate/pg_backup' connect_timeout='10' "
                       "dbname='shop' host='db.internal' port='5433' sslmode='require' user='app'")
    assert argv[5:] == ["--compress=4", "--jobs=3", "--schema-only", "--table=public.users", "--exclude-table=audit*",
                        "--snapshot=00000003-1"]
    assert not any("s3cr" in a for a in argv)


def test_conninfo_quoting_and_passfile_escaping():
    assert bk.conninfo_quote("it's a \\ test") == "'it\\'s a \\\\ test'"
    assert bk.passfile_line("a:b\\c") == "*:*:*:*:a\\:b\\\\c\n"
    with pytest.raises(PrismaOpsError, match="line break"):
        bk.passfile_line("a\nb")
    with pytest.raises(PrismaOpsError, match="sslpassword"):
        bk.pg_dump_conninfo(parse_database_url("postgresql://u:p@h/d?sslpassword=x"))


def test_child_environment_drops_pgpassword_only_when_a_passfile_replaces_it(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "inherited")
    monkeypatch.setenv("PGSERVICE", "elsewhere")
    env = bk.child_environment("/tmp/x/pgpass")
    assert "PGPASSWORD" not in env and env["PGPASSFILE"] == "/tmp/x/pgpass" and "PGSERVICE" not in env
    assert env["LC_MESSAGES"] == "C"
    assert bk.child_environment(None)["PGPASSWORD"] == "inherited"


def test_restore_commands_hold_no_secret():
    spec = parse_database_url(URL)
    tools = {"pg_restore": "/usr/lib/postgresql/15/bin/pg_restore", "psql": "/usr/lib/postgresql/15/bin/psql"}
    custom = bk.restore_command("custom", "/b/prisma-shop-x.dump", tools, spec, "shop", None)
    assert custom == ("/usr/lib/postgresql/15/bin/pg_restore --host=db.internal --port=5433 --username=app "
                      "'--dbname=dbname='\"'\"'shop'\"'\"' sslmode='\"'\"'require'\"'\"'' --clean --if-exists "
                      "--exit-on-error --single-transaction /b/prisma-shop-x.dump")
    plain = bk.restore_command("plain", "/b/my backups/x.sql", tools, parse_database_url("postgresql://u:pw@h/d"), "d",
                               None)
    assert plain == ("/usr/lib/postgresql/15/bin/psql --host=h --port=5432 --username=u --dbname=d "
                     "--set=ON_ERROR_STOP=1 --single-transaction '--file=/b/my backups/x.sql'")
    directory = bk.restore_command("directory", "/b/x.dir", {}, parse_database_url("postgresql://u:pw@h/d"), "d", 4)
    assert directory.startswith("pg_restore ") and "--jobs=4" in directory and "--single-transaction" not in directory
    for text in (custom, plain, directory):
        assert "s3cr" not in text and "pw" not in text


def make_backup(directory, name: str, finished: dt.datetime, database: str = "shop", content: bytes = b"dump",
                **manifest) -> str:
    path = os.path.join(str(directory), name)
    with open(path, "wb") as handle:
        handle.write(content)
    digest, size = bk.checksum(path)
    data = {"tool": bk.TOOL, "file": name, "database": database, "finished_at": finished.isoformat(), "verified": True,
            "server": "db.internal:5433", "sha256": digest, "size": size,
            "selection": {"format": "custom", "schema_only": False, "tables": [], "exclude_tables": []},
            "position": POSITION, "prisma_migrations": HISTORY}
    data.update(manifest)
    with open(path + bk.MANIFEST_SUFFIX, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    return path


def test_list_backups_needs_pattern_and_matching_manifest(tmp_path):
    good = make_backup(tmp_path, "prisma-shop-20250301T000000Z.dump", NOW - dt.timedelta(days=3))
    newer = make_backup(tmp_path, "prisma-shop-20250302T000000Z.sql", NOW - dt.timedelta(days=2))
    make_backup(tmp_path, "prisma-shop-20250303T000000Z.dump", NOW, database="other")  # manifest names another db
    make_backup(tmp_path, "prisma-shop-20250303T000001Z.dump", NOW, tool="someone.else")
    make_backup(tmp_path, "nightly-shop-20250303T000000Z.dump", NOW)
    (tmp_path / "prisma-shop-20250303T000002Z.dump").write_bytes(b"no manifest")
    assert [b["path"] for b in bk.list_backups(str(tmp_path), "prisma", "shop")] == [newer, good]
    assert bk.list_backups(str(tmp_path / "missing"), "prisma", "shop") == []
    # A symlink with a backup's name is not skipped: someone made it, and the directory is refused until removed.
    os.symlink(good, str(tmp_path / "prisma-shop-20250303T000003Z.dump"))
    with pytest.raises(PrismaOpsError) as exc:
        bk.list_backups(str(tmp_path), "prisma", "shop")
    assert exc.value.details["code"] == "untrusted" and "is a symbolic link" in exc.value.msg


def test_reuse_picks_the_newest_matching_intact_backup(tmp_path):
    opts = bk.BackupOptions.from_params({"backup_dir": str(tmp_path), "reuse_within": "2h"})
    old = make_backup(tmp_path, "prisma-shop-20250304T020000Z.dump", NOW - dt.timedelta(hours=3))
    mid = make_backup(tmp_path, "prisma-shop-20250304T040000Z.dump", NOW - dt.timedelta(hours=1))
    tampered = make_backup(tmp_path, "prisma-shop-20250304T043000Z.dump", NOW - dt.timedelta(minutes=30))
    with open(tampered, "ab") as handle:
        handle.write(b"!")
    make_backup(tmp_path, "prisma-shop-20250304T045000Z.dump", NOW - dt.timedelta(minutes=10), server="other:5432")
    make_backup(tmp_path, "prisma-shop-20250304T050000Z.dump", NOW - dt.timedelta(minutes=5), verified=False)
    schema = dict(format="custom", schema_only=True, tables=[], exclude_tables=[])
    make_backup(tmp_path, "prisma-shop-20250304T050500Z.dump", NOW - dt.timedelta(minutes=2), selection=schema)
    make_backup(tmp_path, "prisma-shop-20250304T060000Z.dump", NOW + dt.timedelta(hours=1))  # from the future
    notes: list = []
    backups = bk.list_backups(str(tmp_path), "prisma", "shop")

    with bk.TrustedDir(str(tmp_path), bk.trusted_uids()) as trusted:
        chosen = bk.find_reusable(backups, opts, "db.internal:5433", NOW, notes, trusted, POSITION, HISTORY)
        assert chosen["path"] == mid and chosen["age"] == 3600
        assert notes == ["%s does not match its manifest's checksum any more: not reused" % tampered]
        too_short = bk.BackupOptions.from_params({"backup_dir": str(tmp_path), "reuse_within": "30m"})
        assert bk.find_reusable(backups, too_short, "db.internal:5433", NOW, [], trusted, POSITION, HISTORY) is None
        assert old in [b["path"] for b in backups]
        # Any transaction finished since (xmax moved), other rows, or no recorded position: never reused.
        for position, history in ((dict(POSITION, xmax=POSITION["xmax"] + 1), HISTORY),
                                  (POSITION, {"schema": "public", "table_exists": True, "rows": []})):
            notes = []
            assert bk.find_reusable(backups, opts, "db.internal:5433", NOW, notes, trusted, position, history) is None
            assert any(mid in note and "before later writes" in note for note in notes)
    unpositioned = make_backup(tmp_path, "prisma-shop-20250304T050550Z.dump", NOW - dt.timedelta(minutes=1),
                               position=None)
    with bk.TrustedDir(str(tmp_path), bk.trusted_uids()) as trusted:
        chosen = bk.find_reusable(bk.list_backups(str(tmp_path), "prisma", "shop"), opts, "db.internal:5433", NOW, [],
                                  trusted, POSITION, HISTORY)
    assert chosen["path"] == mid != unpositioned


def test_write_positions_match_only_when_idle_and_unchanged():
    idle = {"xmin": 10, "xmax": 10, "idle": True, "wal_lsn": "0/1"}
    assert bk.same_position(idle, dict(idle, wal_lsn="0/2"))  # WAL alone moves without writes: not a criterion
    assert not bk.same_position(idle, dict(idle, xmin=11, xmax=11))
    assert not bk.same_position(dict(idle, xmin=9, idle=False), idle)  # a transaction ran during the dump
    assert not bk.same_position(None, idle) and not bk.same_position({}, idle)


def test_retention_plan():
    backups = [{"path": "/b/%d" % i, "finished_at": NOW - dt.timedelta(days=i)} for i in range(6)]  # newest first
    assert bk.plan_retention(backups, {"/b/0"}, None, None, NOW) == []
    assert [b["path"] for b in bk.plan_retention(backups, {"/b/0"}, 3, None, NOW)] == ["/b/3", "/b/4", "/b/5"]
    # A reused older backup counts first towards keep_last and is never deleted.
    assert [b["path"] for b in bk.plan_retention(backups, {"/b/4"}, 2, None, NOW)] == ["/b/1", "/b/2", "/b/3", "/b/5"]
    assert [b["path"] for b in bk.plan_retention(backups, {"/b/0"}, None, 2 * 86400 + 1, NOW)] == ["/b/3", "/b/4", "/b/5"]
    # Either rule deletes; the kept backup survives even when older than max_age.
    assert [b["path"] for b in bk.plan_retention(backups, {"/b/5"}, 4, 86400 + 1, NOW)] == ["/b/2", "/b/3", "/b/4"]
    assert bk.plan_retention(backups, {"/b/5"}, 1, 1, NOW) == backups[:5]


def test_directory_checksum_is_a_sorted_listing(tmp_path):
    backup_dir = tmp_path / "x.dir"
    (backup_dir / "sub").mkdir(parents=True)
    (backup_dir / "toc.dat").write_bytes(b"toc")
    (backup_dir / "3001.dat.gz").write_bytes(b"data")
    (backup_dir / "sub" / "a").write_bytes(b"a")
    digest, size = bk.checksum(str(backup_dir))
    assert size == 8
    import hashlib
    listing = "".join("%s  %s\n" % (hashlib.sha256(c).hexdigest(), n)
                      for n, c in sorted([("toc.dat", b"toc"), ("3001.dat.gz", b"data"), ("sub/a", b"a")]))
    assert digest == hashlib.sha256(listing.encode()).hexdigest()


def test_check_backup_dir_writes_nothing(tmp_path):
    assert bk.check_backup_dir(str(tmp_path)) == {"exists": True}
    assert bk.check_backup_dir(str(tmp_path / "a" / "b")) == {"exists": False}
    assert not (tmp_path / "a").exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(PrismaOpsError, match="exists and is not a directory"):
        bk.check_backup_dir(str(tmp_path / "f"))
    with pytest.raises(PrismaOpsError, match="is not a directory"):
        bk.check_backup_dir(str(tmp_path / "f" / "sub"))


# ---------------------------------------------------------------------------------------------------------------
# space_factor: the free-space check a new backup must pass


@pytest.mark.parametrize("value,factor", [(None, None), ("", None), (0, 0.0), ("1.5", 1.5), (1e9, 1e9), ("2", 2.0)])
def test_space_factor_is_parsed(value, factor):
    assert bk.BackupOptions.from_params({"backup_dir": "/b", "space_factor": value}).space_factor == factor


@pytest.mark.parametrize("value", [-0.1, "-1", "nan", "inf", "lots", True])
def test_bad_space_factor_is_refused_naming_the_option(value):
    with pytest.raises(PrismaOpsError, match="space_factor=.* is not usable: give a number 0 or more"):
        bk.BackupOptions.from_params({"backup_dir": "/b", "space_factor": value})


@pytest.mark.parametrize("size,text", [
    (0, "0 Bytes"), (1, "1 Byte"), (1023, "1023 Bytes"), (1024, "1.0 KiB"), (1024 * 1024, "1.0 MiB"),
    (7_654_321, "7.3 MiB"), (3 * 1024 ** 3, "3.0 GiB"), (5 * 1024 ** 9, "5120.0 YiB"),
])
def test_sizes_read_as_the_role_always_wrote_them(size, text):
    # Jinja's filesizeformat(true), which the role's message used before pg_backup made the check.
    assert bk.format_size(size) == text


def test_nearest_existing_dir_is_the_file_system_a_new_directory_lands_on(tmp_path):
    assert bk.nearest_existing_dir(str(tmp_path)) == str(tmp_path)
    assert bk.nearest_existing_dir(str(tmp_path / "a" / "b" / "c")) == str(tmp_path)
    (tmp_path / "a").mkdir()
    assert bk.nearest_existing_dir(str(tmp_path / "a" / "b" / "c") + "/") == str(tmp_path / "a")
    assert bk.nearest_existing_dir("/") == "/"


def test_check_space_passes_or_refuses_with_the_figures():
    assert bk.check_space("shop", 8 * 1024 ** 2, 1.0, 8 * 1024 ** 2, "/srv") == 8 * 1024 ** 2  # exactly fits
    assert bk.check_space("shop", 8 * 1024 ** 2, 0.0, 0, "/srv") == 0  # factor 0: any disk will do
    with pytest.raises(PrismaOpsError) as refused:
        bk.check_space("shop", 8 * 1024 ** 2, 1.5, 1024 ** 2, "/srv/small")
    assert refused.value.msg == (
        "not enough free disk for the backup: need 12.0 MiB (database shop is 8.0 MiB, times space_factor 1.5), have "
        "1.0 MiB in /srv/small. Nothing was changed; free space there, or point backup_dir at a larger disk")
    assert refused.value.details == {"code": "no_space", "free_bytes": 1024 ** 2, "database_size": 8 * 1024 ** 2}


def test_free_space_is_that_of_the_nearest_existing_parent(tmp_path):
    where, free = bk.free_space(str(tmp_path / "not" / "yet"))
    st = os.statvfs(str(tmp_path))
    assert where == str(tmp_path) and free > 0
    # The same file system, read twice: equal up to what other processes wrote meanwhile.
    assert abs(free - st.f_bavail * st.f_frsize) < 64 * 1024 ** 2
