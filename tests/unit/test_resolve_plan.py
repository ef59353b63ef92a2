"""The resolve decision as a pure function: names, Prisma's refusals, idempotence, lists, statements, CLI errors."""

from __future__ import annotations

import datetime as dt

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import HistoryRow
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import (
    LocalMigration, MigrationsDir, script_checksum,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.resolve import (
    cli_argv, normalize_names, parse_cli_error, plan_resolution, refusal_message, simulate_plans, statements_for,
    validate_name,
)

pytestmark = pytest.mark.unit

NAME = "20250102000000_broken"
SCRIPT = "CREATE TABLE \"Broken\" (\"id\" INTEGER);\n"
T0 = dt.datetime(2025, 1, 2, 12, 0, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(minutes=1)


def row(rid: str, name: str = NAME, finished=None, rolled_back=None, started=T0) -> HistoryRow:
    return HistoryRow(id=rid, checksum="c" * 64, finished_at=finished, migration_name=name, logs="x",
                      rolled_back_at=rolled_back, started_at=started, applied_steps_count=0)


def local(*names: str, script: str | None = SCRIPT, provider: str | None = "postgresql") -> MigrationsDir:
    return MigrationsDir(path="/app/prisma/migrations", provider=provider, lockfile_present=True,
                         migrations=[LocalMigration(n, "/app/prisma/migrations/" + n, script,
                                                    None if script is not None else "no migration.sql in this folder")
                                     for n in names])


def ids():
    counter = iter(range(1, 100))
    return lambda: "new-%d" % next(counter)


def plan1(state: str, rows: list, table: bool = True, folder=None, name: str = NAME):
    folder = folder if folder is not None else local(NAME)
    return plan_resolution([name], state, rows, table, folder, check_local=True, new_id=ids())[0]


@pytest.mark.parametrize("bad, why", [
    ("", "empty"), ("   ", "empty"), ("a'b", "'"), ('a"b', '"'), ("a;b", ";"), ("a/b", "/"), ("..", ".."),
    ("../etc", ".."), ("a\\b", "\\"), ("a\nb", "control"), ("a\rb", "control"), ("a\x00b", "control"),
    ("a\tb", "control"), ("x" * 256, "256 characters"), ("--schema=x", "'-'"), (" a", "spaces"), ("a`b", "`"),
])
def test_bad_names_are_refused_with_the_reason(bad, why):
    with pytest.raises(PrismaOpsError) as err:
        validate_name(bad)
    assert why in err.value.msg
    assert "\n" not in err.value.msg


@pytest.mark.parametrize("good", ["20250102000000_add_posts", "0_init", "x" * 255, "2025-01-02_a.b", "20250102_ünï"])
def test_good_names_pass(good):
    assert validate_name(good) == good


def test_normalize_names_keeps_order_and_rejects_empty_list():
    assert normalize_names("a") == ["a"]
    assert normalize_names(["b", "a", "b"]) == ["b", "a", "b"]
    with pytest.raises(PrismaOpsError):
        normalize_names([])
    with pytest.raises(PrismaOpsError):
        normalize_names(["ok", "bad;name"])


# --- applied --------------------------------------------------------------------------------------------------------

def test_applied_on_failed_rolls_back_each_failed_row_then_inserts_with_local_checksum():
    plan = plan1("applied", [row("r1", rolled_back=T0), row("r2", started=T1), row("other", name="x")])
    assert plan.outcome == "changed" and plan.code is None
    assert [(a.kind, a.row_id) for a in plan.actions] == [("roll_back_row", "r2"), ("insert_applied_row", "new-1")]
    assert plan.actions[-1].checksum == script_checksum(SCRIPT)


def test_applied_without_table_creates_it_first_baseline():
    plan = plan1("applied", [], table=False)
    assert [a.kind for a in plan.actions] == ["create_table", "insert_applied_row"]
    assert "baseline" in plan.reason


def test_applied_twice_is_unchanged_not_p3008():
    plan = plan1("applied", [row("r1", rolled_back=T0), row("r2", finished=T1, started=T1)])
    assert plan.outcome == "unchanged" and plan.actions == [] and "P3008" in plan.reason


def test_applied_with_edited_script_is_unchanged_with_a_warning():
    applied = row("r1", finished=T0)
    applied.checksum = script_checksum("something else")
    plan = plan1("applied", [applied])
    assert plan.outcome == "unchanged" and "edited after apply" in plan.warnings[0]


@pytest.mark.parametrize("rows", [
    [row("r1", finished=T0, rolled_back=T1)],            # finished then rolled back by hand
    [row("r1", finished=T0), row("r2", started=T1)],     # applied and failed side by side
])
def test_applied_on_hand_edited_history_is_refused_p3008(rows):
    plan = plan1("applied", rows)
    assert plan.outcome == "refused" and plan.code == "P3008" and plan.actions == []


def test_applied_needs_the_local_script_p3017():
    assert plan1("applied", [], folder=local("other")).code == "P3017"
    missing = plan1("applied", [], folder=local(NAME, script=None))
    assert missing.code == "P3017" and "no migration.sql" in missing.reason
    assert plan1("applied", [], folder=local(NAME, provider="mysql")).code == "P3019"
    # A lockfile without a provider line is refused by Prisma too (it reads `<PROVIDER NOT FOUND>`): same finding.
    no_line = plan1("applied", [], folder=local(NAME, provider=None))
    assert no_line.code == "P3019" and "has no line starting with provider" in no_line.reason


def test_applied_without_local_check_leaves_the_checksum_to_the_cli():
    plan = plan_resolution([NAME], "applied", [], True, None, check_local=False, new_id=ids())[0]
    assert plan.outcome == "changed" and plan.actions[-1].checksum is None


# --- rolled_back ----------------------------------------------------------------------------------------------------

def test_rolled_back_marks_only_failed_rows_of_that_name():
    plan = plan1("rolled_back", [row("r1", rolled_back=T0), row("r2", started=T1), row("o", name="other")])
    assert plan.outcome == "changed" and [(a.kind, a.row_id) for a in plan.actions] == [("roll_back_row", "r2")]


def test_rolled_back_refusals_follow_prisma():
    assert plan1("rolled_back", [], table=False).code == "no_migrations_table"
    assert plan1("rolled_back", [row("o", name="other")]).code == "P3011"
    assert plan1("rolled_back", [row("r1", finished=T0)]).code == "P3012"
    assert plan1("rolled_back", [row("r1", finished=T0, rolled_back=T1)]).code == "P3012"


def test_rolled_back_again_is_unchanged():
    plan = plan1("rolled_back", [row("r1", rolled_back=T0)])
    assert plan.outcome == "unchanged" and plan.actions == [] and "already rolled back" in plan.reason


def test_rolled_back_on_an_applied_migration_with_a_rolled_back_row_is_p3012():
    # Prisma exits 0 here and writes nothing; we refuse: the migration is applied, not rolled back.
    plan = plan1("rolled_back", [row("r1", rolled_back=T0), row("r2", finished=T1, started=T1)])
    assert plan.outcome == "refused" and plan.code == "P3012" and "it is applied" in plan.reason


# --- lists ----------------------------------------------------------------------------------------------------------

def test_a_list_is_planned_in_order_on_the_rows_earlier_names_leave():
    names = ["20250101_a", NAME, NAME]
    plans = plan_resolution(names, "applied", [row("r2")], False, local(*names[:2]), True, new_id=ids())
    assert [p.outcome for p in plans] == ["changed", "changed", "unchanged"]
    assert [a.kind for a in plans[0].actions] == ["create_table", "insert_applied_row"]
    assert [a.kind for a in plans[1].actions] == ["roll_back_row", "insert_applied_row"]
    after = simulate_plans([row("r2")], plans)
    assert [(r.migration_name, r.is_applied) for r in after] == [(NAME, False), ("20250101_a", True), (NAME, True)]


def test_one_refusal_in_a_list_is_reported_by_name():
    plans = plan_resolution(["a", "b"], "rolled_back", [row("ra", name="a")], True)
    message = refusal_message(plans)
    assert message.startswith("nothing was written") and "P3011" in message and "migration b" in message
    assert refusal_message(plan_resolution(["a"], "rolled_back", [row("ra", name="a")], True)) is None


# --- statements and CLI ---------------------------------------------------------------------------------------------

def test_statements_are_prismas_rows_and_guarded_updates():
    plan = plan_resolution([NAME], "applied", [row("r2")], False, local(NAME), True, new_id=ids())[0]
    stmts = statements_for(plan, 'te"nant')
    assert stmts[0][0].startswith('CREATE TABLE "te""nant"."_prisma_migrations" (')
    assert "VARCHAR(36) PRIMARY KEY NOT NULL" in stmts[0][0] and "DEFAULT now()" in stmts[0][0]
    assert "finished_at IS NULL AND rolled_back_at IS NULL" in stmts[1][0] and stmts[1][1] == ("r2",)
    assert "'', NULL, statement_timestamp(), 0)" in stmts[2][0]
    assert stmts[2][1] == ("new-1", script_checksum(SCRIPT), NAME)
    assert not any("DELETE" in s for s, _params in stmts)


def test_cli_argv_puts_the_name_last_and_no_url():
    expected = ["npx", "prisma", "migrate", "resolve", "--rolled-back", NAME]
    assert cli_argv(["npx", "prisma"], "rolled_back", NAME) == expected


@pytest.mark.parametrize("output, code, message", [
    ("Prisma schema loaded\n\nError: P3011\n\nMigration `x` cannot be rolled back because it was never applied.\n",
     "P3011", "Migration `x` cannot be rolled back because it was never applied."),
    ("\x1b[31mError: P1002\x1b[0m\n\nThe database server was reached but timed out.\n\nPlease try again.\n",
     "P1002", "The database server was reached but timed out."),
    ("Error: Invariant violation: called markMigrationRolledBack on a database without migrations table.\n", None,
     "Invariant violation: called markMigrationRolledBack on a database without migrations table."),
    ("", None, "no output"),
    # A driver adapter's mapped error (real 6.19.3 / 7.10.1 deploy output): the adapter's words after its header.
    ("2 migrations found in prisma/migrations\nError: external connector error\nNo such table: Nope\n   0: sql_schema_"
     "connector::apply_migration::apply_script\n", None, "external connector error: No such table: Nope"),
    ("Error: external connector error\n   0: sql_schema_connector::apply_migration::apply_script\n", None,
     "external connector error"),
])
def test_parse_cli_error(output, code, message):
    assert parse_cli_error(output) == {"code": code, "message": message}
