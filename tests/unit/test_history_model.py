"""Unit tests of module_utils/history.py: build_report over synthetic rows, summarize, parse_failure_log."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import (
    LOG_LIMIT, STATES, HistoryRow, build_report, parse_failure_log, relation_finding, require_writable,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import (
    LocalMigration, MigrationsDir, prisma_sort_key,
)

pytestmark = pytest.mark.unit

T0 = datetime(2025, 1, 2, 12, 0, 0, tzinfo=timezone.utc)

NATIVE_P3018_LOG = (
    "A migration failed to apply. New migrations cannot be applied before the error is recovered from. Read more "
    "about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve\n"
    "\n"
    "Migration name: 20250102000000_add_user\n"
    "\n"
    "Database error code: 42P07\n"
    "\n"
    "Database error:\n"
    "ERROR: relation \"User\" already exists\n"
    "\n"
    "Position:\n"
    "\x1b[1m  0\x1b[0m\n"
    "\x1b[1m  1\x1b[0m -- CreateTable\n"
    "\x1b[1m  2\x1b[1;31m CREATE TABLE \"User\" (\x1b[0m\n"
    "\n"
    "DbError { severity: \"ERROR\", parsed_severity: Some(Error), code: SqlState(E42P07), message: \"relation "
    "\\\"User\\\" already exists\", detail: None, hint: None, position: None, where_: None, schema: None, table: None, "
    "column: None, datatype: None, constraint: None, file: Some(\"heap.c\"), line: Some(1146), "
    "routine: Some(\"heap_create_with_catalog\") }\n"
    "\n"
    "   0: sql_schema_connector::apply_migration::apply_script\n"
    "           with migration_name=\"20250102000000_add_user\"\n"
    "             at schema-engine/connectors/sql-schema-connector/src/apply_migration.rs:113\n"
    "   1: schema_core::commands::apply_migrations::Applying migration\n"
    "           with migration_name=\"20250102000000_add_user\"\n"
    "             at schema-engine/core/src/commands/apply_migrations.rs:91\n"
)

DRIVER_ADAPTER_LOG = (
    "external connector error\n"
    "Error querying the database: ERROR: division by zero\n"
    "   0: sql_schema_connector::apply_migration::apply_script\n"
    "           with migration_name=\"20250102000000_multi\"\n"
    "             at schema-engine/connectors/sql-schema-connector/src/apply_migration.rs:113\n"
    "   1: schema_core::commands::apply_migrations::Applying migration\n"
    "           with migration_name=\"20250102000000_multi\"\n"
    "             at schema-engine/core/src/commands/apply_migrations.rs:91\n"
)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------

def script_for(name: str) -> str:
    return "-- %s\nCREATE TABLE \"t_%s\" (id int);\n" % (name, name)


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Rows:
    """Rows in started_at order, as read_history returns them."""

    def __init__(self):
        self.rows = []
        self.clock = T0

    def _tick(self):
        self.clock += timedelta(minutes=1)
        return self.clock

    def add(self, name, outcome, script=None, logs=None):
        started = self._tick()
        finished = rolled_back = None
        steps = 0
        if outcome == "applied":
            finished, steps = started + timedelta(seconds=1), 1
        elif outcome == "resolved_applied":  # `migrate resolve --applied`: logs '', steps 0
            finished, logs = started, ""
        elif outcome == "failed":
            logs = DRIVER_ADAPTER_LOG if logs is None else logs
        elif outcome == "rolled_back":  # failed, then `migrate resolve --rolled-back`
            logs = DRIVER_ADAPTER_LOG if logs is None else logs
            rolled_back = started + timedelta(seconds=30)
        else:
            raise ValueError(outcome)
        text = script if script is not None else script_for(name)
        self.rows.append(HistoryRow(str(uuid.uuid4()), checksum(text), finished, name, logs, rolled_back, started, steps))
        return self


def history(rows, table_exists=True, baseline_needed=False, schema_exists=True):
    return {"schema_exists": schema_exists, "table_exists": table_exists, "rows": list(rows),
            "user_tables": [], "baseline_needed": baseline_needed}


def local_dir(*names, scripts=None, order=None, missing_script=()):
    scripts = scripts or {}
    migrations = []
    for name in names:
        if name in missing_script:
            migrations.append(LocalMigration(name=name, path="/m/" + name, script=None, read_error="no migration.sql in this folder"))
        else:
            migrations.append(LocalMigration(name=name, path="/m/" + name, script=scripts.get(name, script_for(name))))
    if order is None:
        migrations.sort(key=lambda m: prisma_sort_key(m.name))
    return MigrationsDir(path="/m", migrations=migrations, provider="postgresql", lockfile_present=True)


def by_name(report):
    return {m["name"]: m for m in report["migrations"]}


A, B, C, D = "20250101000000_init", "20250102000000_add_user", "20250103000000_add_post", "20250104000000_index"


# --------------------------------------------------------------------------------------------
# One state at a time
# --------------------------------------------------------------------------------------------

def test_all_applied_in_sync():
    rows = Rows().add(A, "applied").add(B, "applied").rows
    report = build_report(history(rows), local_dir(A, B))
    assert [m["name"] for m in report["migrations"]] == [A, B]
    for entry in report["migrations"]:
        assert entry["state"] == "applied"
        assert entry["checksum_ok"] is True
        assert entry["will_deploy"] is False
        assert entry["local"] is True
        assert entry["in_database"] is True
        assert entry["attempts"] == 1
        assert entry["applied_steps_count"] == 1
        assert entry["logs"] is None and entry["error"] is None
        assert entry["checksum_local"] == entry["checksum_database"]
    assert report["in_sync"] is True
    assert report["deploy_blocked"] is False
    assert report["will_deploy"] == []
    assert report["counts"] == {"applied": 2, "failed": 0, "rolled_back": 0, "pending": 0, "missing_locally": 0,
                                "modified": 0, "total": 2, "will_deploy": 0, "rows": 2}
    assert report["summary"] == "in sync: 2 migrations applied"


def test_timestamps_are_iso_strings():
    rows = Rows().add(A, "applied").rows
    entry = build_report(history(rows), local_dir(A))["migrations"][0]
    assert entry["started_at"] == rows[0].started_at.isoformat()
    assert entry["finished_at"] == rows[0].finished_at.isoformat()
    assert entry["rolled_back_at"] is None


def test_failed_blocks_deploy():
    rows = Rows().add(A, "applied").add(B, "failed").rows
    report = build_report(history(rows), local_dir(A, B))
    entry = by_name(report)[B]
    assert entry["state"] == "failed"
    assert entry["will_deploy"] is False  # the failed row is not rolled back: deploy counts it as present
    assert entry["finished_at"] is None and entry["rolled_back_at"] is None
    assert entry["logs"] == DRIVER_ADAPTER_LOG
    assert entry["error"] == {"sqlstate": None, "message": "division by zero", "engine": "driver_adapter",
                              "migration_name": "20250102000000_multi"}
    assert report["deploy_blocked"] is True
    assert report["failed_migrations"] == [B]
    assert "failed" not in report  # a truthy "failed" key would fail the Ansible task
    assert report["failures"] == [{"name": B, "started_at": entry["started_at"], "attempts": 1, "error": entry["error"]}]
    assert report["in_sync"] is False
    assert report["counts"]["failed"] == 1
    assert "deploy blocked (P3009)" in report["summary"]
    assert B in report["summary"]


def test_failed_without_local_folder_still_blocks():
    rows = Rows().add(A, "applied").add(B, "failed").rows
    report = build_report(history(rows), local_dir(A))
    entry = by_name(report)[B]
    assert entry["state"] == "failed"
    assert entry["local"] is False
    assert entry["checksum_ok"] is None
    assert report["deploy_blocked"] is True
    assert report["missing_locally"] == []


def test_rolled_back_with_local_folder_is_re_run():
    rows = Rows().add(A, "applied").add(B, "rolled_back").rows
    report = build_report(history(rows), local_dir(A, B))
    entry = by_name(report)[B]
    assert entry["state"] == "rolled_back"
    assert entry["will_deploy"] is True
    assert entry["rolled_back_at"] is not None
    assert entry["logs"] is None and entry["error"] is None  # only failed entries carry logs
    assert report["rolled_back"] == [B]
    assert report["will_deploy"] == [B]
    assert report["pending"] == []  # `migrate status` would not call it pending either
    assert report["deploy_blocked"] is False
    assert report["in_sync"] is False
    assert "1 migration to deploy (1 rolled back, will re-run: %s)" % B in report["summary"]


def test_rolled_back_without_local_folder():
    rows = Rows().add(A, "applied").add(B, "rolled_back").rows
    report = build_report(history(rows), local_dir(A))
    entry = by_name(report)[B]
    assert entry["state"] == "rolled_back"
    assert entry["will_deploy"] is False
    assert entry["local"] is False
    assert report["missing_locally"] == []
    assert report["will_deploy"] == []
    assert report["in_sync"] is True


def test_pending():
    rows = Rows().add(A, "applied").rows
    report = build_report(history(rows), local_dir(A, B, C))
    assert report["pending"] == [B, C]
    assert report["will_deploy"] == [B, C]
    for name in (B, C):
        entry = by_name(report)[name]
        assert entry["state"] == "pending"
        assert entry["in_database"] is False
        assert entry["attempts"] == 0
        assert entry["started_at"] is None and entry["checksum_database"] is None and entry["checksum_ok"] is None
        assert entry["checksum_local"] == checksum(script_for(name))
    assert report["in_sync"] is False
    assert report["counts"]["pending"] == 2 and report["counts"]["will_deploy"] == 2
    assert "2 migrations to deploy" in report["summary"]
    assert "rolled back" not in report["summary"]


def test_missing_locally():
    rows = Rows().add(A, "applied").add(B, "applied").rows
    report = build_report(history(rows), local_dir(A))
    entry = by_name(report)[B]
    assert entry["state"] == "missing_locally"
    assert entry["local"] is False
    assert entry["script_present"] is None and entry["checksum_local"] is None
    assert report["missing_locally"] == [B]
    assert report["in_sync"] is False
    assert "in the database but not on disk: %s" % B in report["summary"]


def test_modified_after_apply():
    rows = Rows().add(A, "applied").add(B, "applied").rows
    scripts = {B: script_for(B) + "-- edited later\n"}
    report = build_report(history(rows), local_dir(A, B, scripts=scripts))
    entry = by_name(report)[B]
    assert entry["state"] == "modified"
    assert entry["checksum_ok"] is False
    assert entry["checksum_local"] != entry["checksum_database"]
    assert report["modified"] == [B]
    assert report["in_sync"] is False
    assert report["will_deploy"] == []
    assert "edited after apply: %s" % B in report["summary"]


def test_crlf_copy_is_not_modified():
    rows = Rows().add(A, "applied").rows
    report = build_report(history(rows), local_dir(A, scripts={A: script_for(A).replace("\n", "\r\n")}))
    entry = by_name(report)[A]
    assert entry["state"] == "applied"
    assert entry["checksum_ok"] is True
    assert report["in_sync"] is True


def test_failed_twice_then_resolved_applied():
    rows = (Rows().add(A, "applied")
            .add(B, "rolled_back", logs="first failure")
            .add(B, "rolled_back", logs="second failure")
            .add(B, "resolved_applied").rows)
    report = build_report(history(rows), local_dir(A, B))
    entry = by_name(report)[B]
    assert entry["state"] == "applied"
    assert entry["attempts"] == 3
    assert entry["will_deploy"] is False
    assert entry["started_at"] == rows[-1].started_at.isoformat()  # the resolve row
    assert entry["applied_steps_count"] == 0
    assert entry["logs"] is None
    assert report["deploy_blocked"] is False
    assert report["in_sync"] is True
    assert report["counts"]["rows"] == 4
    assert report["counts"]["total"] == 2


def test_failed_then_rolled_back_then_failed_again():
    rows = Rows().add(A, "rolled_back", logs="old").add(A, "failed", logs=NATIVE_P3018_LOG).rows
    report = build_report(history(rows), local_dir(A))
    entry = by_name(report)[A]
    assert entry["state"] == "failed"
    assert entry["attempts"] == 2
    assert entry["started_at"] == rows[1].started_at.isoformat()  # the latest failed row
    assert entry["error"]["sqlstate"] == "42P07"


def test_two_open_failed_rows_report_the_latest():
    rows = Rows().add(A, "failed", logs="ERROR: first").add(A, "failed", logs="ERROR: second").rows
    report = build_report(history(rows), local_dir(A))
    entry = by_name(report)[A]
    assert entry["state"] == "failed"
    assert entry["attempts"] == 2
    assert entry["started_at"] == rows[1].started_at.isoformat()
    assert entry["error"]["message"] == "second"
    assert report["failed_migrations"] == [A]


def test_failed_plus_pending():
    rows = Rows().add(A, "applied").add(B, "failed", logs=NATIVE_P3018_LOG).rows
    report = build_report(history(rows), local_dir(A, B, C, D))
    states = {m["name"]: m["state"] for m in report["migrations"]}
    assert states == {A: "applied", B: "failed", C: "pending", D: "pending"}
    assert report["deploy_blocked"] is True
    assert report["failed_migrations"] == [B]
    assert report["pending"] == [C, D]
    assert report["will_deploy"] == [C, D]
    assert report["in_sync"] is False
    summary = report["summary"]
    assert summary.startswith("deploy blocked (P3009) by failed migration %s" % B)
    assert "2 migrations to deploy" in summary
    error = by_name(report)[B]["error"]
    assert error == {"sqlstate": "42P07", "message": 'relation "User" already exists', "engine": "native",
                     "migration_name": B}


def test_several_failed_listed_in_summary():
    rows = Rows().add(A, "failed").add(B, "failed").rows
    report = build_report(history(rows), local_dir(A, B))
    assert report["failed_migrations"] == [A, B]
    assert "deploy blocked (P3009) by failed migrations %s, %s" % (A, B) in report["summary"]
    assert [f["name"] for f in report["failures"]] == [A, B]


def test_every_state_at_once_counts():
    E, F = "20250105000000_gone", "20250106000000_undone_gone"
    rows = (Rows().add(A, "applied").add(B, "applied").add(C, "failed").add(D, "rolled_back")
            .add(E, "applied").add(F, "rolled_back").rows)
    pending = "20250107000000_new"
    report = build_report(history(rows), local_dir(A, B, C, D, pending, scripts={B: "changed"}))
    states = {m["name"]: m["state"] for m in report["migrations"]}
    assert states == {A: "applied", B: "modified", C: "failed", D: "rolled_back", E: "missing_locally",
                      F: "rolled_back", pending: "pending"}
    counts = report["counts"]
    assert {s: counts[s] for s in STATES} == {"applied": 1, "failed": 1, "rolled_back": 2, "pending": 1,
                                              "missing_locally": 1, "modified": 1}
    assert counts["total"] == 7 and counts["rows"] == 6 and counts["will_deploy"] == 2
    assert report["will_deploy"] == [D, pending]
    assert report["in_sync"] is False


# --------------------------------------------------------------------------------------------
# Ordering, table/baseline states, no migrations_dir
# --------------------------------------------------------------------------------------------

def test_migrations_sorted_like_prisma_and_will_deploy_follows_local_order():
    names = ["20250101000000_b", "20250101000000_A", "20250101000000-a", "20250101000000_a", "20250101000000a"]
    report = build_report(history([]), local_dir(*names))
    expected = sorted(names, key=prisma_sort_key)
    assert [m["name"] for m in report["migrations"]] == expected
    assert report["will_deploy"] == expected
    assert expected != sorted(names)  # byte order would differ


def test_will_deploy_uses_the_local_list_order_as_given():
    local = local_dir(C, A, B, order="as given")
    assert local.names == [C, A, B]
    report = build_report(history([]), local)
    assert report["will_deploy"] == [C, A, B]
    assert [m["name"] for m in report["migrations"]] == [A, B, C]


def test_db_only_names_interleave_in_sorted_order():
    rows = Rows().add(C, "applied").add(A, "applied").rows
    report = build_report(history(rows), local_dir(A, B))
    assert [m["name"] for m in report["migrations"]] == [A, B, C]


def test_no_migrations_table_everything_pending():
    report = build_report(history([], table_exists=False), local_dir(A, B))
    assert report["table_exists"] is False
    assert report["pending"] == [A, B]
    assert report["will_deploy"] == [A, B]
    assert report["in_sync"] is False
    assert "no _prisma_migrations table" in report["summary"]
    assert "2 migrations to deploy" in report["summary"]


def test_no_migrations_table_and_nothing_local_is_not_in_sync():
    report = build_report(history([], table_exists=False), local_dir())
    assert report["in_sync"] is False
    assert report["migrations"] == []
    assert report["summary"] == "no _prisma_migrations table (not managed by Prisma Migrate yet)"


def test_baseline_needed():
    report = build_report(history([], table_exists=False, baseline_needed=True), local_dir(A))
    assert report["baseline_needed"] is True
    assert report["in_sync"] is False
    assert "baseline needed (P3005)" in report["summary"]
    assert "no _prisma_migrations table (not managed" not in report["summary"]


def test_empty_table_and_empty_folder_is_in_sync():
    report = build_report(history([]), local_dir())
    assert report["in_sync"] is True
    assert report["summary"] == "in sync: 0 migrations applied"


def test_without_migrations_dir_database_side_only():
    rows = Rows().add(A, "applied").add(B, "rolled_back").rows
    report = build_report(history(rows), None)
    entries = by_name(report)
    assert entries[A]["state"] == "applied"  # not missing_locally: the folder was not checked
    assert entries[A]["local"] is None
    assert entries[A]["checksum_ok"] is None
    assert entries[B]["state"] == "rolled_back"
    assert entries[B]["will_deploy"] is False
    assert report["missing_locally"] == []
    assert report["will_deploy"] == []
    assert report["in_sync"] is True
    assert report["summary"] == "in sync: 1 migration applied; database side only (no migrations_dir given)"


def test_without_migrations_dir_failed_still_reported():
    rows = Rows().add(A, "failed").rows
    report = build_report(history(rows), None)
    assert report["deploy_blocked"] is True
    assert report["in_sync"] is False
    assert A in report["summary"]
    assert "database side only" not in report["summary"]


def test_pending_without_migration_sql_is_flagged():
    report = build_report(history(Rows().add(A, "applied").rows), local_dir(A, B, missing_script=(B,)))
    entry = by_name(report)[B]
    assert entry["state"] == "pending"
    assert entry["script_present"] is False
    assert entry["script_error"] == "no migration.sql in this folder"
    assert entry["checksum_local"] is None
    assert report["missing_scripts"] == [B]
    assert "no migration.sql (deploy would fail with P3015): %s" % B in report["summary"]


def test_applied_without_migration_sql_is_not_modified():
    report = build_report(history(Rows().add(A, "applied").rows), local_dir(A, missing_script=(A,)))
    entry = by_name(report)[A]
    assert entry["state"] == "applied"
    assert entry["checksum_ok"] is None
    assert report["missing_scripts"] == []


def test_long_logs_are_truncated():
    rows = Rows().add(A, "failed", logs="ERROR: boom\n" + "x" * (LOG_LIMIT * 2)).rows
    entry = by_name(build_report(history(rows), local_dir(A)))[A]
    assert len(entry["logs"]) == LOG_LIMIT
    assert entry["error"]["message"] == "boom"


def test_build_report_passes_table_flags_through():
    report = build_report(history([], schema_exists=False), None)
    assert report["schema_exists"] is False
    assert report["table_exists"] is True


# --------------------------------------------------------------------------------------------
# parse_failure_log
# --------------------------------------------------------------------------------------------

def test_parse_native_p3018_log():
    assert parse_failure_log(NATIVE_P3018_LOG) == {
        "sqlstate": "42P07",
        "message": 'relation "User" already exists',
        "engine": "native",
        "migration_name": "20250102000000_add_user",
    }


def test_parse_native_log_with_sqlstate_none():
    text = NATIVE_P3018_LOG.replace("Database error code: 42P07", "Database error code: none").replace(
        "SqlState(E42P07)", "SqlState(Other)")
    parsed = parse_failure_log(text)
    assert parsed["sqlstate"] is None
    assert parsed["engine"] == "native"
    assert parsed["message"] == 'relation "User" already exists'


def test_parse_native_log_debug_form_only():
    parsed = parse_failure_log('db error: ERROR: column "x" of relation "t" already exists\n'
                               'DbError { code: SqlState(E42701), message: "column" }')
    assert parsed["sqlstate"] == "42701"
    assert parsed["message"].startswith('column "x" of relation "t" already exists')


def test_parse_driver_adapter_log():
    assert parse_failure_log(DRIVER_ADAPTER_LOG) == {
        "sqlstate": None,
        "message": "division by zero",
        "engine": "driver_adapter",
        "migration_name": "20250102000000_multi",
    }


# What @prisma/adapter-pg leaves in the row's logs when it maps the PostgreSQL error to one of its own kinds (seen
# with the real 6.19.3 and 7.10.1 CLIs: undefined table, foreign key violation, undefined column, a unique
# violation it calls a null constraint, a kind the 7.10.1 wasm engine does not know): no ERROR line, no SQLSTATE.
@pytest.mark.parametrize("said", [
    "No such table: Nope",
    "Foreign key constraint failed: P_u_fkey",
    "Error accessing result set, column not found: nope",
    "Null constraint failed: ",
    "Error in the underlying connector (WASM_ERROR): Error: unknown variant `InvalidInputValue`, expected one of "
    "`GenericJs`, `UnsupportedNativeDataType`",
])
def test_parse_driver_adapter_mapped_error_keeps_what_the_adapter_said(said):
    logs = DRIVER_ADAPTER_LOG.replace("Error querying the database: ERROR: division by zero", said)
    parsed = parse_failure_log(logs)
    assert parsed["message"] == said.strip() and parsed["message"] != "external connector error"
    assert (parsed["sqlstate"], parsed["engine"]) == (None, "driver_adapter")


@pytest.mark.parametrize("logs", [None, "", "   ", " \n\t\n"])
def test_parse_empty_logs(logs):
    assert parse_failure_log(logs) is None


def test_parse_unknown_text_uses_first_line():
    parsed = parse_failure_log("\n  something unexpected happened  \nmore detail\n")
    assert parsed["message"].rstrip() == "something unexpected happened"
    assert (parsed["sqlstate"], parsed["engine"], parsed["migration_name"]) == (None, "unknown", None)


def test_parse_unknown_text_first_line_is_capped():
    parsed = parse_failure_log("z" * 2000)
    assert parsed["message"] == "z" * 500


# --------------------------------------------------------------------------------------------
# A history relation that is not a plain table (issue 13)
# --------------------------------------------------------------------------------------------

def relation_history(rows, kind):
    return dict(history(rows), table_kind=kind, table_finding=relation_finding(kind, "public"))


@pytest.mark.parametrize("kind", ["view", "partitioned table", "materialized view", "foreign table"])
def test_a_history_that_is_not_a_table_blocks_deploy_and_is_never_in_sync(kind):
    rows = Rows().add(A, "applied").rows
    report = build_report(relation_history(rows, kind), local_dir(A))
    assert report["table_exists"] is True and report["baseline_needed"] is False
    assert report["deploy_blocked"] is True and report["in_sync"] is False and report["table_kind"] == kind
    assert report["summary"].startswith('"public"."_prisma_migrations" is a %s, not a table' % kind)
    assert "in sync" not in report["summary"] and "P3009" not in report["summary"]


def test_a_plain_table_has_no_finding():
    assert relation_finding("table", "public") is None and relation_finding(None, "public") is None
    report = build_report(relation_history(Rows().add(A, "applied").rows, "table"), local_dir(A))
    assert report["in_sync"] is True and report["table_finding"] is None


@pytest.mark.parametrize("state", ["applied", "rolled_back"])
def test_require_writable_refuses_a_view_for_either_state(state):
    with pytest.raises(PrismaOpsError) as raised:
        require_writable(relation_history([], "view"), "public", state)
    assert raised.value.details["code"] == "history_not_a_table" and "nothing was written" in raised.value.msg


def test_require_writable_refuses_a_missing_schema_only_for_applied():
    missing = dict(history([], table_exists=False, schema_exists=False), table_kind=None, table_finding=None)
    with pytest.raises(PrismaOpsError) as raised:
        require_writable(missing, "nowhere", "applied")
    assert raised.value.details["code"] == "no_schema"
    require_writable(missing, "nowhere", "rolled_back")  # planned as no_migrations_table, with the others
