"""The failure-shape planner of tests/harness/failure_shapes.py: which states a file can leave, and what is right."""

from __future__ import annotations

from tests.harness.failure_shapes import (
    APPLIED_OK, NOT_APPLIED_OK, PARTIAL_OK, committed_prefix, plan_shapes, projects, _parse)

PLAIN = '''
ALTER TABLE "B" DROP CONSTRAINT "B_aId_fkey";
ALTER TABLE "B" ADD CONSTRAINT "B_aId_fkey" FOREIGN KEY ("aId") REFERENCES "A"("id") ON DELETE CASCADE;
CREATE TABLE "C" ("id" SERIAL NOT NULL, CONSTRAINT "C_pkey" PRIMARY KEY ("id"));
'''

IN_BEGIN = '''
BEGIN;
CREATE TYPE "S_new" AS ENUM ('a');
ALTER TYPE "S" RENAME TO "S_old";
COMMIT;
ALTER TABLE "T" ADD COLUMN "c" TEXT;
'''


def by_name(shapes: list) -> dict:
    return {s.name: s for s in shapes}


def test_a_plain_file_leaves_every_prefix():
    shapes = by_name(plan_shapes(PLAIN))
    assert list(shapes) == ["not_applied", "stuck_applied", "partial_1", "all_but_last", "hand_made_table"]
    assert shapes["not_applied"].right == NOT_APPLIED_OK and shapes["stuck_applied"].right == APPLIED_OK
    assert shapes["partial_1"].right == shapes["all_but_last"].right == PARTIAL_OK
    assert len(shapes["all_but_last"].run) == 2
    # The hand-made table is the third statement: what comes before it is made by hand with it.
    assert shapes["hand_made_table"].held == 3 and shapes["hand_made_table"].right == APPLIED_OK
    assert shapes["hand_made_table"].error["sqlstate"] == "42P07"


def test_a_file_in_begin_commit_leaves_only_what_its_commit_kept():
    statements = _parse(IN_BEGIN)
    assert [committed_prefix(statements, k) for k in range(1, 6)] == [0, 0, 0, 4, 5]
    shapes = by_name(plan_shapes(IN_BEGIN))
    # Failing inside the block leaves nothing (not_applied); failing at the last statement leaves the block.
    assert list(shapes) == ["not_applied", "stuck_applied", "all_but_last"]
    assert shapes["all_but_last"].held == 4 and shapes["all_but_last"].right == PARTIAL_OK


def test_a_remainder_without_lasting_effect_is_applied_equivalent():
    shapes = by_name(plan_shapes('BEGIN;\nCREATE TABLE "X" ("id" INTEGER);\nCOMMIT;\nSET search_path TO "public";\n'))
    assert shapes["all_but_last"].held == 3 and shapes["all_but_last"].right == APPLIED_OK
    # The hand-made table held through statement 2, but the file's COMMIT after it has no lasting effect.
    assert shapes["hand_made_table"].right == APPLIED_OK and shapes["hand_made_table"].run == ('CREATE TABLE "X" ("id" INTEGER)',)


def test_the_corpus_loads_with_its_schemas():
    found = {p.name: p for p in projects()}
    assert {"analytics", "scheduling", "links", "surveys"} <= set(found)
    assert found["surveys"].schema == "survey_app" and found["links"].schema == "public"
    for project in found.values():
        assert project.migrations and [m[0] for m in project.migrations] == sorted(m[0] for m in project.migrations)
        for _name, script in project.migrations:
            assert _parse(script)
