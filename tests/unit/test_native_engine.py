"""tests/harness/native_engine.py on the real sqloxide 0.61.1 (sqlparser 0.61, as native Prisma >= 7.4 uses it).

What the shared note claims, checked here: ordinary Prisma DDL files split; a file with any DO block, and one with
DROP INDEX CONCURRENTLY, do not (the 7.4+ engine then sends the whole file at once). Found on the way (true of
sqlparser 0.61, not in the note): CREATE SEQUENCE with START WITH before INCREMENT BY, ALTER SEQUENCE and REINDEX
do not parse either, so files holding them are sent whole too.
"""

from __future__ import annotations

import pytest

from tests.harness.failure_shapes import _parse, plan_shapes, projects
from tests.harness.native_engine import (
    FAMILIES, JS, NATIVE_SPLIT, NATIVE_WHOLE, PER_STATEMENT, SEMICOLON, WHOLE, EngineRun, execution, native_splits,
    sqlparser_statements)

pytestmark = pytest.mark.unit

PRISMA_INIT = '''-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

-- CreateTable
CREATE TABLE "User" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "role" "Role" NOT NULL DEFAULT 'USER',
    "tags" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "meta" JSONB NOT NULL DEFAULT '{}',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "authorId" TEXT NOT NULL,

    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

-- CreateIndex
CREATE INDEX "Post_authorId_idx" ON "Post"("authorId");

-- AddForeignKey
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
'''

# Prisma's enum value removal, in the BEGIN/COMMIT it writes, then a statement after it.
ENUM_CHANGE = '''BEGIN;
CREATE TYPE "Role_new" AS ENUM ('USER');
ALTER TABLE "User" ALTER COLUMN "role" DROP DEFAULT;
ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");
ALTER TYPE "Role" RENAME TO "Role_old";
ALTER TYPE "Role_new" RENAME TO "Role";
DROP TYPE "Role_old";
ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT 'USER';
COMMIT;

-- AlterTable
ALTER TABLE "User" ADD COLUMN "name" TEXT;
'''

DO_BLOCK_LATE = '''ALTER TABLE "User" ADD COLUMN "slug" TEXT;
DO $$ BEGIN
  ALTER TABLE "Post" ADD CONSTRAINT "Post_slug_check" CHECK (true);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
CREATE INDEX "User_slug_idx" ON "User"("slug");
'''

FUNCTION_AND_TRIGGER = '''CREATE OR REPLACE FUNCTION "touch"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW."updatedAt" := now();
  RETURN NEW;
END;
$$;
CREATE TRIGGER "User_touch" BEFORE UPDATE ON "User" FOR EACH ROW EXECUTE FUNCTION "touch"();
'''


def test_ordinary_prisma_ddl_files_split_into_the_statements_pglast_finds():
    for script in (PRISMA_INIT, ENUM_CHANGE, FUNCTION_AND_TRIGGER,
                   'CREATE INDEX CONCURRENTLY "User_x_idx" ON "User" USING HASH ("email");\n'
                   'CREATE INDEX CONCURRENTLY "Post_y_idx" ON "Post" USING GIN ("tags");\n'):
        assert native_splits(script), script
        assert sqlparser_statements(script) == len(_parse(script))
        assert execution(NATIVE_SPLIT, script) == PER_STATEMENT
    # Every family but 7.4+ is fixed whatever the file holds.
    assert execution(NATIVE_WHOLE, PRISMA_INIT) == WHOLE and execution(JS, PRISMA_INIT) == SEMICOLON


@pytest.mark.parametrize("script", [
    'DO $$ BEGIN PERFORM 1; END $$;',
    DO_BLOCK_LATE,                                            # one DO block anywhere: the whole file
    'DROP INDEX CONCURRENTLY "User_email_key";',
    'CREATE TABLE "A" ("id" INTEGER);\nDROP INDEX CONCURRENTLY IF EXISTS "A_id_idx";',
])
def test_a_do_block_or_drop_index_concurrently_is_sent_whole(script):
    assert sqlparser_statements(script) is None and not native_splits(script)
    assert execution(NATIVE_SPLIT, script) == WHOLE


@pytest.mark.parametrize("script", [
    'CREATE SEQUENCE "n_seq" START WITH 1000 INCREMENT BY 1;',  # the option order Prisma users write by hand
    'ALTER SEQUENCE "n_seq" OWNED BY "T"."n";',
    'REINDEX INDEX CONCURRENTLY "User_email_key";',
])
def test_more_statements_sqlparser_cannot_parse_than_the_note_names(script):
    """Not in the note, true of sqlparser 0.61: these too make the 7.4+ engine send the file whole."""
    assert not native_splits(script)
    # The same options in the other order do parse: the fallback depends on how the file is written.
    assert native_splits('CREATE SEQUENCE "n_seq" INCREMENT BY 1 START WITH 1000;')


def test_what_a_failure_can_leave_in_a_plain_file_under_each_family():
    statements = _parse(PRISMA_INIT)
    total = len(statements)
    assert total == 6
    whole, split, js = (EngineRun(f, PRISMA_INIT, statements) for f in FAMILIES)
    assert whole.states() == {0, total}                       # one implicit transaction: all or nothing
    assert split.states() == js.states() == set(range(total + 1))
    # A failure at statement 4 leaves 1-3 under 7.4+ and JS, nothing under 6.x-7.3.
    assert [run.held_after_failure(4) for run in (whole, split, js)] == [0, 3, 3]


def test_a_file_in_begin_commit_leaves_its_commit_under_every_family():
    statements = _parse(ENUM_CHANGE)
    commit = [s.index for s in statements if s.kind == "commit"][0]
    for family in FAMILIES:
        states = EngineRun(family, ENUM_CHANGE, statements).states()
        # Inside the block nothing holds; after the COMMIT, the block does.
        assert states == {0, commit, len(statements)}, family


def test_a_do_block_file_is_all_or_nothing_natively_and_breaks_the_js_split_at_the_block():
    statements = _parse(DO_BLOCK_LATE)
    assert [s.kind for s in statements] == ["add_column", "do_block", "create_index"]
    whole, split, js = (EngineRun(f, DO_BLOCK_LATE, statements) for f in FAMILIES)
    assert whole.states() == split.states() == {0, 3}
    # adapter-pg cuts the DO block at its first ';': statement 2 always fails, after statement 1 committed.
    assert js.states() == {0, 1} and not js.can_succeed
    assert js.held_after_failure(2) == 1 and js.held_after_failure(3) is None


def test_concurrently_in_a_multi_statement_file_never_succeeds_whole():
    script = ('CREATE TABLE "A" ("id" INTEGER);\nCREATE INDEX CONCURRENTLY "A_id_idx" ON "A"("id");\n'
              'CREATE TABLE "B" ("id" INTEGER);\n')
    statements = _parse(script)
    whole, split, js = (EngineRun(f, script, statements) for f in FAMILIES)
    # 25001 at statement 2, every time, with statement 1 rolled back; 7.4+ sends them one by one.
    assert whole.states() == {0} and whole.held_after_failure(3) is None
    assert split.states() == js.states() == {0, 1, 2, 3}


def test_the_corpus_split_or_whole_as_the_74_engine_decides():
    whole = set()
    for project in projects():
        for name, script in project.migrations:
            count = sqlparser_statements(script)
            if count is None:
                whole.add(name)
            else:
                assert count == len(_parse(script)), name  # the 7.4+ statements are the collection's statements
    assert whole == {"20240409121212_event_checks", "20240617123000_idempotent_cleanup", "20221120160000_display_status"}


def test_shapes_say_who_leaves_them_partial_is_ordinary_for_74_on_split_files():
    shapes = {s.name: s for s in plan_shapes(PRISMA_INIT)}
    assert shapes["not_applied"].left_by == shapes["stuck_applied"].left_by == frozenset(FAMILIES)
    for name in ("partial_1", "partial_3", "all_but_last"):
        assert shapes[name].left_by == {NATIVE_SPLIT, JS}, name
    assert shapes["hand_made_table"].left_by == frozenset(FAMILIES)


def test_shapes_of_a_whole_file_partial_prefixes_are_not_left_by_native_74():
    shapes = {s.name: s for s in plan_shapes(DO_BLOCK_LATE)}
    assert shapes["partial_1"].left_by == {JS}                 # still judged: the JS engine leaves it
    assert shapes["all_but_last"].left_by == frozenset()       # no engine: only a hand edit or a crash
    assert NATIVE_SPLIT not in shapes["partial_1"].left_by and NATIVE_SPLIT in shapes["stuck_applied"].left_by
    assert JS not in shapes["stuck_applied"].left_by           # the JS split can never run the DO block
