"""prisma_migration_info's log_hint on migrations the real Prisma CLI failed (6.19.3 and 7.10.1's wasm path).

The CLI here runs the JS engine (split on ';', autocommit), so what really failed shows in the database: the
statements before the failing one committed, the ones after it did not. The hint must name that statement from the
row's real log. The native engine cannot run here: its log is built (tests/harness/native_engine.p3018_log) from
the real PostgreSQL error of the same file sent whole, as native Prisma 6.x-7.3 sends it, and must name the same
statement through its Position block. The evidence verdict does not move with the log (the hint decides nothing).
"""

from __future__ import annotations

import psycopg2
import pytest

from tests.harness.native_engine import p3018_log
from tests.harness.modules import run_module

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma, pytest.mark.both_prisma_clis]

INIT = ("20250101000000_init", '''-- CreateTable
CREATE TABLE "Student" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,

    CONSTRAINT "Student_pkey" PRIMARY KEY ("id")
);
''')
# Statement 3 fails: the column it reads does not exist (PostgreSQL gives the position of "nickname").
GUARDIANS = ("20250201000000_guardians", '''-- CreateTable
CREATE TABLE "Guardian" (
    "id" SERIAL NOT NULL,

    CONSTRAINT "Guardian_pkey" PRIMARY KEY ("id")
);

-- AlterTable
ALTER TABLE "Student" ADD COLUMN "displayName" TEXT;

-- Backfill
UPDATE "Student" SET "displayName" = "nickname";

-- CreateIndex
CREATE INDEX "Student_displayName_idx" ON "Student"("displayName");
''')
# Statement 2 fails on a relation made by hand: no position, the error names what only statement 2 creates.
INDEXES = ("20250301000000_indexes", '''-- CreateIndex
CREATE INDEX "Student_name_idx" ON "Student"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Student_name_key" ON "Student"("name");

-- CreateTable
CREATE TABLE "Note" ("id" SERIAL NOT NULL, CONSTRAINT "Note_pkey" PRIMARY KEY ("id"));
''')


def relations(db, *names: str) -> set:
    rows = db.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s)", (list(names),))
    return {r[0] for r in rows}


def info(db, project, **extra) -> dict:
    args = dict(database_url=db.url(), migrations_dir=str(project.migrations_dir), **extra)
    result = run_module("prisma_migration_info", args)
    assert not result.get("failed"), result
    return result


def failed_entry(result: dict, name: str) -> dict:
    return next(m for m in result["migrations"] if m["name"] == name)


def test_the_hint_names_the_statement_the_real_cli_failed_on(project, db, pg_cluster):
    project.add_migration(*INIT)
    assert project.deploy().returncode == 0
    project.add_migration(*GUARDIANS)
    failed = project.deploy()
    assert failed.returncode == 1 and "column not found: nickname" in failed.output
    # What really failed: statements 1-2 committed one by one, 4 never ran.
    assert relations(db, "Guardian", "Student_displayName_idx") == {"Guardian"}
    assert db.execute("SELECT count(*) FROM information_schema.columns WHERE column_name = 'displayName'") == [(1,)]

    result = info(db, project, evidence=True)
    entry = failed_entry(result, GUARDIANS[0])
    assert entry["logs"].startswith("external connector error")  # the JS engine's log, as the CLI wrote it
    hint = entry["log_hint"]
    # adapter-pg's own words for 42703, the column unquoted (not PostgreSQL's message).
    assert hint["statement_index"] == 3 and hint["message"] == "Error accessing result set, column not found: nickname"
    assert hint["how"] == 'the error names "nickname", and only statement 3 mentions it'
    assert result["failures"][0]["log_hint"] == hint
    assert failed_entry(result, INIT[0])["log_hint"] is None
    verdict = result["evidence"][GUARDIANS[0]]["verdict"]

    # The same file as native Prisma 6.x-7.3 sends it (whole, one query) on a database at the init: the real error.
    native = pg_cluster.create_database()
    try:
        conn = native.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(INIT[1])
                with pytest.raises(psycopg2.Error) as raised:
                    cur.execute(GUARDIANS[1])
        finally:
            conn.close()
        error = raised.value
        assert relations(native, "Guardian") == set()  # one implicit transaction: nothing of it held
    finally:
        pg_cluster.drop_database(native.name)
    position = int(error.diag.statement_position)
    assert GUARDIANS[1][position - 1:].startswith('"nickname"')
    log = p3018_log(GUARDIANS[0], error.pgcode, error.diag.message_primary, GUARDIANS[1], position)
    db.execute("UPDATE _prisma_migrations SET logs = %s WHERE migration_name = %s AND finished_at IS NULL",
               (log, GUARDIANS[0]), superuser=True)
    result = info(db, project, evidence=True)
    hint = failed_entry(result, GUARDIANS[0])["log_hint"]
    assert hint["sqlstate"] == "42703" and hint["statement_index"] == 3, hint
    assert hint["how"].startswith('the Position block shows line 12 (UPDATE "Student" SET "displayName" = "nickname";)')
    # The log changed, the evidence did not: the hint feeds no verdict.
    assert result["evidence"][GUARDIANS[0]]["verdict"] == verdict


def test_a_relation_made_by_hand_is_named_from_the_error_alone(project, db):
    project.add_migration(*INIT)
    assert project.deploy().returncode == 0
    db.execute('CREATE TABLE "Student_name_key" ("id" INTEGER)', superuser=True)
    project.add_migration(*INDEXES)
    assert project.deploy().returncode == 1
    assert relations(db, "Student_name_idx", "Note") == {"Student_name_idx"}  # statement 1 ran, 3 did not
    hint = failed_entry(info(db, project), INDEXES[0])["log_hint"]
    assert hint["statement_index"] == 2, hint
    assert hint["how"] == 'the error names relation "Student_name_key", and only statement 2 creates it'
    # Without the folder there is nothing to match the log against: the error still, no statement.
    bare = run_module("prisma_migration_info", dict(database_url=db.url()))
    hint = failed_entry(bare, INDEXES[0])["log_hint"]
    assert hint["statement_index"] is None and hint["how"] == "no migration.sql to match the log against"
    assert hint["message"] == 'relation "Student_name_key" already exists'
