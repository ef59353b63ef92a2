"""pg_restore's decisions as plain functions: options, the confirm guard, choosing the newest verified backup over real
files, manifest history comparison, the dump's schemas, the preamble SQL, and argv with no secret in it."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils import restore as rs
from ansible_collections.prisma_ops.migrate.plugins.module_utils.backup import checksum
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import parse_database_url
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

pytestmark = pytest.mark.unit

SECRET = "s3cr:t@pw"
URL = "postgresql://app:s3cr%3At%40pw@db.internal:5433/shop?schema=public&sslmode=require"
ROW = {"id": "1", "migration_name": "20250101000000_init", "checksum": "a" * 64, "started_at": "2025-01-01T00:00:00+00:00",
       "finished_at": "2025-01-01T00:00:01+00:00", "rolled_back_at": None, "applied_steps_count": 1, "logs": None}


@pytest.mark.parametrize("params,needle", [
    ({}, "not neither"),
    ({"path": "/b/x.dump", "backup_dir": "/b"}, "not both"),
    ({"backup_dir": "/b", "prefix": "../x"}, "not a pg_backup prefix"),
    ({"path": "/b/x.dump", "container": "a b"}, "is not a container or service name"),
    ({"path": "/b/x.dump", "container": "db", "container_exec": ["docker", ""]}, "container_exec must be the command"),
    ({"path": "/b/x.dump", "lock_timeout": 0}, "lock_timeout must be at least 1"),
])
def test_bad_options_are_one_clear_error(params, needle):
    with pytest.raises(PrismaOpsError) as exc:
        rs.RestoreOptions.from_params(params)
    assert needle in exc.value.msg


@pytest.mark.parametrize("confirm", [None, "", "shop ", "Shop", "prod"])
def test_confirm_must_be_exactly_the_database_name(confirm):
    error = rs.confirm_error(confirm, "shop", "db:5432/shop")
    assert error is not None and error.details["code"] == "not_confirmed"
    assert "Pass confirm=shop (restore_confirm=shop" in error.msg and "nothing was changed" in error.msg
    assert rs.confirm_error("shop", "shop", "db:5432/shop") is None


def test_expected_database_defaults_to_the_user_like_libpq():
    assert rs.expected_database(parse_database_url(URL)) == "shop"
    assert rs.expected_database(parse_database_url("postgresql://app:x@h:5432")) == "app"


def make_backup(directory, name: str, content: bytes, database: str = "shop", **manifest) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(content)
    digest, size = checksum(path)
    data = {"tool": "prisma_ops.migrate.pg_backup", "file": name, "database": database, "verified": True,
            "format": {"dump": "custom", "sql": "plain", "dir": "directory"}[name.rsplit(".", 1)[1]],
            "sha256": digest, "size": size, "finished_at": "2025-01-%sT00:00:00+00:00" % name.rsplit("-", 1)[1][6:8],
            "selection": {"format": "custom", "schema_only": False, "tables": [], "exclude_tables": []},
            "prisma_migrations": {"schema": "public", "table_exists": True, "rows": [ROW]}}
    data.update(manifest)
    with open(path + ".manifest.json", "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    return path


def test_choosing_skips_newer_backups_that_do_not_verify(tmp_path):
    oldest = make_backup(tmp_path, "prisma-shop-20250101T000000Z.dump", b"one")
    make_backup(tmp_path, "prisma-shop-20250102T000000Z.dump", b"two")
    tampered = make_backup(tmp_path, "prisma-shop-20250103T000000Z.dump", b"three")
    with open(tampered, "ab") as handle:
        handle.write(b"!")
    make_backup(tmp_path, "prisma-shop-20250104T000000Z.dump", b"four", selection={"schema_only": True})
    make_backup(tmp_path, "prisma-other-20250105T000000Z.dump", b"another database", database="other")

    chosen, notes = rs.pick_backup(rs.RestoreOptions(backup_dir=str(tmp_path)), "shop")

    assert chosen["path"].endswith("20250102T000000Z.dump") and chosen["sha256"] == checksum(chosen["path"])[0]
    assert len(notes) == 2 and "only part of the database" in notes[0] and "does not match its manifest" in notes[1]
    assert os.path.exists(oldest)


def test_nothing_verifies_is_one_error_listing_why(tmp_path):
    bad = make_backup(tmp_path, "prisma-shop-20250101T000000Z.dump", b"one")
    with open(bad, "ab") as handle:
        handle.write(b"!")
    with pytest.raises(PrismaOpsError) as exc:
        rs.pick_backup(rs.RestoreOptions(backup_dir=str(tmp_path)), "shop")
    assert exc.value.details["code"] == "no_backup" and "1 backup(s), none verifies" in exc.value.msg


def test_choose_backup_is_newest_first_given_any_verifier():
    def verify(path):
        if path != "b":
            raise PrismaOpsError("no")
        return {"path": path}
    chosen = rs.choose_backup([{"path": "a"}, {"path": "b"}, {"path": "c"}], verify)
    assert chosen == ({"path": "b"}, ["skipped a: no"])
    assert rs.choose_backup([], verify) == (None, [])


@pytest.mark.parametrize("manifest,code", [
    ({"prisma_migrations": {"error": "permission denied", "rows": []}}, "bad_manifest"),
    ({"verified": False}, "bad_manifest"),
    ({"format": "plain"}, "bad_manifest"),
    ({"file": "another.dump"}, "no_manifest"),
    ({"selection": {"tables": ["public.x"]}}, "partial_backup"),
])
def test_backups_that_cannot_be_restored_safely_are_refused(tmp_path, manifest, code):
    path = make_backup(tmp_path, "prisma-shop-20250101T000000Z.dump", b"x", **manifest)
    with pytest.raises(PrismaOpsError) as exc:
        rs.verify_backup(path)
    assert exc.value.details["code"] == code


def test_history_comparison_ignores_time_zones_and_names_each_difference():
    expected = {"table_exists": True, "rows": [ROW]}
    same_instant = dict(ROW, started_at="2025-01-01T02:00:00+02:00", finished_at="2025-01-01T02:00:01+02:00")
    assert rs.compare_history(expected, {"table_exists": True, "rows": [same_instant]}) == []
    changed = dict(ROW, rolled_back_at="2025-02-01T00:00:00+00:00", checksum="b" * 64)
    extra = dict(ROW, id="2", migration_name="20250102000000_more")
    problems = rs.compare_history(expected, {"table_exists": True, "rows": [changed, extra]})
    assert problems == ["row 2 (20250102000000_more) is not in the backup",
                        "row 1 (20250101000000_init) differs in checksum, rolled_back_at"]
    assert rs.compare_history(expected, {"table_exists": False, "rows": []}) == [
        "the table exists in the backup but does not exist now", "row 1 (20250101000000_init) is missing"]


def test_dump_schemas_from_pg_dump_headers():
    lines = ["-- Name: other; Type: SCHEMA; Schema: -; Owner: app\n",
             "-- Name: public; Type: SCHEMA; Schema: -; Owner: app\n",
             "-- Name: User; Type: TABLE; Schema: public; Owner: app\n",
             "-- Data for Name: t; Type: TABLE DATA; Schema: other; Owner: app\n",
             "-- Name: pgcrypto; Type: EXTENSION; Schema: -; Owner: -\n",
             "-- Name: x; Type: TABLE; Schema: pg_catalog; Owner: app\n",
             "SELECT '-- Name: y; Type: TABLE; Schema: evil; Owner: app';\n"]
    assert rs.dump_schemas(lines) == ({"other", "public"}, {"other"})
    assert rs.plain_has_transaction(["SET x = 1;\n", "BEGIN;\n"]) and not rs.plain_has_transaction(["BEGINNING;\n"])


def test_preamble_takes_prisma_lock_without_waiting_then_empties_and_recreates_schemas():
    sql = rs.preamble_sql([
        {"name": "public", "exists": True, "recreate": True, "owner": "app",
         "grants": [("app", "USAGE", False), (None, "USAGE", False), ("reader", "CREATE", True)],
         "comment": "standard public schema"},
        {"name": "other", "exists": True, "recreate": False, "owner": "app", "grants": [], "comment": None},
    ], 30, begin=True)
    assert sql.splitlines() == [
        "BEGIN;", "SET LOCAL lock_timeout = '30s';", "SET LOCAL client_min_messages = warning;",
        sql.splitlines()[3],
        'DROP SCHEMA "other" CASCADE;',
        'DROP SCHEMA "public" CASCADE;', 'CREATE SCHEMA "public" AUTHORIZATION "app";',
        'GRANT USAGE ON SCHEMA "public" TO PUBLIC;', 'GRANT CREATE ON SCHEMA "public" TO "reader" WITH GRANT OPTION;',
        "COMMENT ON SCHEMA \"public\" IS 'standard public schema';"]
    assert "pg_try_advisory_xact_lock(72707369)" in sql.splitlines()[3]
    assert not rs.preamble_sql([], 5, begin=False).startswith("BEGIN")


def test_argv_never_holds_the_password_and_the_container_gets_it_by_name():
    spec = parse_database_url(URL)
    tools = {"pg_restore": "/usr/lib/postgresql/15/bin/pg_restore", "psql": "/usr/lib/postgresql/15/bin/psql"}
    host = rs.RestoreOptions(path="/b/x.dump")
    docker = rs.RestoreOptions(path="/b/x.dump", container="db1")
    argvs = [rs.render_argv(host, tools, "/b/x.dump"), rs.psql_argv(host, tools, spec, "custom", "/b/x.dump", "BEGIN;"),
             rs.psql_argv(host, tools, spec, "plain", "/b/x.sql", "SET x=1;"),
             rs.render_argv(docker, rs.container_tools(), "/b/x.dump"),
             rs.psql_argv(docker, rs.container_tools(), spec, "custom", "/b/x.dump", "BEGIN;")]
    for argv in argvs:
        assert not any(SECRET in a or "s3cr%3At%40pw" in a for a in argv), argv
    # A custom archive and a plain dump come on stdin, from the descriptor they were verified through.
    assert argvs[0] == [tools["pg_restore"], "--file=-", "--single-transaction"]
    assert rs.render_argv(host, tools, "/b/x.dir")[-1] == "/b/x.dir"
    assert "--single-transaction" in argvs[2] and argvs[2][-1] == "--file=-"
    assert "--single-transaction" not in argvs[1] and argvs[1][-1] == "--file=-"
    assert argvs[3] == ["docker", "exec", "-i", "db1", "pg_restore", "--file=-", "--single-transaction"]
    assert argvs[4][:6] == ["docker", "exec", "-i", "-e", "PGPASSWORD", "db1"]
    conninfo = [a for a in argvs[1] if a.startswith("--dbname=")][0]
    assert "sslmode='require'" in conninfo and "application_name='prisma_ops.migrate/pg_restore'" in conninfo
    no_password = parse_database_url("postgresql://app@h:5432/shop")
    assert "-e" not in rs.psql_argv(docker, rs.container_tools(), no_password, "plain", "/b/x.sql", "")
    # container_exec as in pg_backup and prisma_migrate_deploy: a compose service, the same container.py helper.
    compose = rs.RestoreOptions.from_params({"path": "/b/x.dump", "container": "db",
                                             "container_exec": ["docker", "compose", "exec", "-T"]})
    assert rs.psql_argv(compose, rs.container_tools(), spec, "custom", "/b/x.dump", "")[:8] == [
        "docker", "compose", "exec", "-T", "-i", "-e", "PGPASSWORD", "db"]


@pytest.mark.parametrize("version,has", [((15, 18), True), ((15, 13), False), ((16, 10), True), ((17, 5), False),
                                         ((18, 0), True), ((13, 22), True), ((12, 22), False)])
def test_restrict_needs_the_fixed_psql_of_each_branch(version, has):
    assert rs.has_restrict(version) is has


def test_plain_script_puts_our_key_first_and_drops_only_the_dumps_own_restrict_pair():
    dump = [b"--\n", b"-- PostgreSQL database dump\n", b"\\restrict OWNKEY\n", b"SET x = 1;\n",
            b"COPY t (a) FROM stdin;\n", b"\\\\! data\n", b"\\.\n", b"-- done\n", b"\\unrestrict OWNKEY\n", b"\n",
            b"-- PostgreSQL database dump complete\n"]
    out = list(rs.plain_script(iter(dump), "abc123"))
    assert out[0] == b"\\restrict abc123\n"
    assert out[1:] == [line for line in dump if b"OWNKEY" not in line]
    # The same pair anywhere else is passed on, where psql refuses it under our key.
    planted = dump[:4] + [b"\\unrestrict OWNKEY\n", b"\\! id\n"] + dump[4:]
    out = list(rs.plain_script(iter(planted), "abc123"))
    assert b"\\unrestrict OWNKEY\n" in out and b"\\! id\n" in out and b"\\restrict OWNKEY\n" not in out
    # A file with no \restrict of its own keeps every line.
    bare = [b"SET x = 1;\n", b"\\! id\n"]
    assert list(rs.plain_script(iter(bare), "k"))[1:] == bare
