"""The completion decision as pure functions: which statements run, which are skipped, which refuse."""

from __future__ import annotations

import datetime as dt

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.complete import (
    non_transactional_reason, plan_completion, plan_statements,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import HistoryRow
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import LocalMigration, MigrationsDir
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script

pytestmark = pytest.mark.unit

NAME = "20250102000000_posts"
T0 = dt.datetime(2025, 1, 2, 12, 0, tzinfo=dt.timezone.utc)
PG15 = 150000


def snapshot(tables: dict | None = None, indexes: dict | None = None) -> dict:
    """A snapshot in take_snapshot()'s shape; tables: {"public.T": {col: type}}."""
    return {
        "schemas": ["public"],
        "tables": {name: {"columns": {c: {"type": t, "not_null": True, "default": None, "identity": None,
                                          "generated": None} for c, t in cols.items()}}
                   for name, cols in (tables or {}).items()},
        "indexes": indexes or {}, "constraints": {}, "enums": {}, "extensions": {}, "views": {}, "sequences": {},
        "functions": {}, "triggers": {},
    }


def failed_row(name: str = NAME) -> HistoryRow:
    return HistoryRow(id="r1", checksum="c" * 64, finished_at=None, migration_name=name, logs="boom",
                      rolled_back_at=None, started_at=T0, applied_steps_count=0)


def local(script: str) -> MigrationsDir:
    return MigrationsDir(path="/app/prisma/migrations", provider="postgresql", lockfile_present=True,
                         migrations=[LocalMigration(NAME, "/app/prisma/migrations/" + NAME, script)])


def actions(steps: list) -> list:
    return [(s.index, s.action) for s in steps]


SCRIPT = ('CREATE TABLE "Post" ("id" INTEGER NOT NULL);\n'
          'CREATE TABLE "Tag" ("id" INTEGER NOT NULL);\n'
          'CREATE INDEX "Tag_id_idx" ON "Tag"("id");\n')


def test_present_statements_are_skipped_and_absent_ones_run_in_order():
    live = snapshot({"public.Post": {"id": "integer"}})
    plan = plan_completion(NAME, SCRIPT, [failed_row()], True, local(SCRIPT), "public", live, PG15)
    assert plan.outcome == "changed"
    assert actions(plan.steps) == [(1, "skip_present"), (2, "run"), (3, "run")]
    assert plan.reason == "run 2 missing statements (2, 3), then resolve --applied"
    assert [a.kind for a in plan.resolution.actions] == ["roll_back_row", "insert_applied_row"]


def test_an_applied_migration_is_unchanged_without_looking_at_the_statements():
    applied = HistoryRow(id="r2", checksum="c" * 64, finished_at=T0, migration_name=NAME, logs="",
                         rolled_back_at=None, started_at=T0, applied_steps_count=0)
    plan = plan_completion(NAME, "NOT SQL AT ALL", [applied], True, local("x"), "public", snapshot(), PG15)
    assert plan.outcome == "unchanged" and plan.steps == []


def test_a_data_statement_refuses_naming_it():
    script = 'CREATE TABLE "Post" ("id" INTEGER NOT NULL);\nUPDATE "Post" SET "id" = 2;\n'
    with pytest.raises(PrismaOpsError) as err:
        plan_completion(NAME, script, [failed_row()], True, local(script), "public", snapshot(), PG15)
    assert err.value.details["code"] == "cannot_tell" and err.value.details["statement"]["index"] == 2
    assert err.value.msg.startswith('statement 2 (update Post: UPDATE "Post"')


def test_a_half_present_statement_refuses():
    script = 'CREATE TABLE "Post" ("id" INTEGER NOT NULL, "title" TEXT NOT NULL);\n'
    live = snapshot({"public.Post": {"id": "integer"}})  # the table, without "title"
    with pytest.raises(PrismaOpsError) as err:
        plan_statements(parse_script(script), "public", live, PG15)
    assert err.value.details["code"] == "cannot_tell" and "half present" not in err.value.msg
    assert "some of its effects are present and some absent" in err.value.msg


def test_conditional_and_session_statements_run_again_control_is_skipped():
    script = ('BEGIN;\nSET lock_timeout = \'5s\';\nCREATE EXTENSION IF NOT EXISTS "pgcrypto";\n'
              'CREATE TABLE IF NOT EXISTS "Post" ("id" INTEGER NOT NULL);\nCREATE TABLE "Tag" ("id" INTEGER NOT NULL);\n'
              'COMMIT;\n')
    live = snapshot({"public.Post": {"id": "integer"}})
    live["extensions"]["pgcrypto"] = {"schema": "public"}
    steps = plan_statements(parse_script(script), "public", live, PG15)
    # The extension may have been there before (cannot tell), but IF NOT EXISTS makes running it again harmless;
    # the table's declared columns are there, so it is present.
    assert actions(steps) == [(1, "skip_control"), (2, "run"), (3, "run"), (4, "skip_present"), (5, "run"),
                              (6, "skip_control")]
    assert steps[2].why.startswith("conditional") and steps[1].why == "harmless to run again"


def test_not_failed_migrations_are_refused():
    rolled_back = HistoryRow(id="r1", checksum="c" * 64, finished_at=None, migration_name=NAME, logs="",
                             rolled_back_at=T0, started_at=T0, applied_steps_count=0)
    for rows, words in (([rolled_back], "only rolled back"), ([], "never recorded")):
        with pytest.raises(PrismaOpsError) as err:
            plan_completion(NAME, SCRIPT, rows, True, local(SCRIPT), "public", snapshot(), PG15)
        assert err.value.details["code"] == "not_failed" and words in err.value.msg


@pytest.mark.parametrize("sql, version, expected", [
    ('CREATE INDEX CONCURRENTLY "i" ON "T"("id")', PG15, "CREATE INDEX CONCURRENTLY cannot run"),
    ('DROP INDEX CONCURRENTLY "i"', PG15, "CONCURRENTLY cannot run"),
    ('REINDEX INDEX CONCURRENTLY "i"', PG15, "CONCURRENTLY cannot run"),
    ('VACUUM "T"', PG15, "VACUUM cannot run"),
    ('ANALYZE "T"', PG15, None),
    ('ALTER TYPE "Mood" ADD VALUE \'SAD\'', 110000, "before PostgreSQL 12"),
    ('ALTER TYPE "Mood" ADD VALUE \'SAD\'', 120000, None),
    ('ALTER TYPE "Mood" RENAME VALUE \'A\' TO \'B\'', 110000, None),
    ('CREATE INDEX "i" ON "T"("id")', PG15, None),
    ("CREATE DATABASE other", PG15, "CREATE DATABASE cannot run"),
])
def test_statements_postgresql_refuses_in_a_transaction_block(sql, version, expected):
    statement = parse_script(sql + ";\n").statements[0]
    reason = non_transactional_reason(statement, version)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_a_missing_non_transactional_statement_refuses_but_a_present_one_is_skipped():
    script = 'CREATE TABLE "Doc" ("id" INTEGER NOT NULL);\nCREATE INDEX CONCURRENTLY "Doc_id_idx" ON "Doc"("id");\n'
    live = snapshot({"public.Doc": {"id": "integer"}})
    with pytest.raises(PrismaOpsError) as err:
        plan_statements(parse_script(script), "public", live, PG15)
    assert err.value.details["code"] == "not_transactional" and err.value.details["statement"]["index"] == 2
    live["indexes"]["public.Doc_id_idx"] = {"table": "public.Doc", "unique": False, "primary": False, "definition": ""}
    assert actions(plan_statements(parse_script(script), "public", live, PG15)) == [(1, "skip_present"),
                                                                                    (2, "skip_present")]
