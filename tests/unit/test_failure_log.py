"""failure_log.log_hint: which statement a failed row's log points at, from real-shaped logs and hostile ones.

The native logs are built the way shared/reference/prisma-migrate.md describes the engine writing them
(tests/harness/native_engine.p3018_log): the P3018 template, the database's error, the Position block, the Debug
form, then the span trace. The JS logs are the text the real CLI writes (tests/integration/test_failure_log_hint.py
checks the hint on the real ones).
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.failure_log import (
    MAX_LOG_CHARS, MAX_TEXT, log_hint)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
from tests.harness.native_engine import p3018_log, position_block

pytestmark = pytest.mark.unit

NAME = "20250301000000_guardians"
SCRIPT = '''-- CreateTable
CREATE TABLE "Guardian" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,

    CONSTRAINT "Guardian_pkey" PRIMARY KEY ("id")
);

-- AlterTable
ALTER TABLE "Student" ADD COLUMN "guardianId" INTEGER;

-- CreateIndex
CREATE INDEX "Student_guardianId_idx" ON "Student"("guardianId");

-- AddForeignKey
ALTER TABLE "Student" ADD CONSTRAINT "Student_guardianId_fkey" FOREIGN KEY ("guardianId") REFERENCES "Guardian"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- Backfill
UPDATE "Student" SET "guardianId" = "legacyGuardian"::integer;
'''


def native_log(code: str, error: str, script: str | None = None, position: int | None = None) -> str:
    return p3018_log(NAME, code, error, script, position)


def js_log(error: str, adapter_words: bool = False) -> str:
    """The JS engine's log: PostgreSQL's message, or adapter-pg's own words for the errors it maps."""
    return ("external connector error\n%s\n" % (error if adapter_words else "Error querying the database: ERROR: " + error)
            + "   0: sql_schema_connector::apply_migration::apply_script\n"
            "           with migration_name=\"%s\"\n"
            "             at schema-engine/connectors/sql-schema-connector/src/apply_migration.rs:113" % NAME)


def at(script: str, needle: str) -> int:
    """PostgreSQL's 1-based position of needle in the script."""
    return script.index(needle) + 1


def statements_of(script: str) -> list:
    return parse_script(script).statements


def test_the_native_position_block_names_the_statement_that_failed():
    log = native_log("42883", 'operator does not exist: text = integer', SCRIPT, at(SCRIPT, '"legacyGuardian"'))
    assert "Position:" in log and "\x1b[1;31m UPDATE" in log
    hint = log_hint(log, SCRIPT)
    assert hint["statement_index"] == 5 and hint["sqlstate"] == "42883"
    assert hint["message"] == "operator does not exist: text = integer"
    assert hint["how"].startswith("the Position block shows line 19 (UPDATE") and "inside statement 5" in hint["how"]


def test_the_0_placeholder_near_the_top_of_the_file_is_not_a_line():
    script = 'CREATE TABLE "A" ("id" INTEGER REFERENCES "Nope"("id"));\n'
    log = native_log("42P01", 'relation "Nope" does not exist', script, at(script, '"Nope"'))
    assert "\x1b[1m  0\x1b[0m\n\x1b[1m  1\x1b[1;31m CREATE" in log  # what the engine prints for line 1
    hint = log_hint(log, script)
    assert hint["statement_index"] == 1 and "shows line 1" in hint["how"]


def test_without_a_position_the_object_the_error_names_decides_only_when_one_statement_creates_it():
    hint = log_hint(native_log("42P07", 'relation "Guardian" already exists'), SCRIPT)
    assert hint["statement_index"] == 1 and hint["sqlstate"] == "42P07"
    assert hint["how"] == 'the error names relation "Guardian", and only statement 1 creates it'
    # A constraint: the one ADD CONSTRAINT of that name, not the CREATE TABLE that mentions the table.
    hint = log_hint(native_log("42710", 'constraint "Student_guardianId_fkey" for relation "Student" already '
                                        'exists'), SCRIPT)
    assert hint["statement_index"] == 4
    hint = log_hint(native_log("42701", 'column "guardianId" of relation "Student" already exists'), SCRIPT)
    assert hint["statement_index"] == 2


def test_the_js_engine_log_has_no_sqlstate_and_names_by_the_error_only():
    hint = log_hint(js_log('relation "Student_guardianId_idx" already exists'), SCRIPT)
    assert hint == {"sqlstate": None, "message": 'relation "Student_guardianId_idx" already exists',
                    "statement_index": 3,
                    "how": 'the error names relation "Student_guardianId_idx", and only statement 3 creates it'}
    # "does not exist" names a table three statements mention: no statement, and the how says why.
    hint = log_hint(js_log('relation "Student" does not exist'), SCRIPT)
    assert hint["statement_index"] is None and "statements 2, 3, 4, 5 mention: not a guess" in hint["how"]


@pytest.mark.parametrize("words, index", [
    # What adapter-pg wrote with the real 6.19.3 and 7.10.1 CLIs here (42P01, 42703, 23503, 23505, 23502).
    ("No such table: Guardian", None),                           # statements 1 and 4 mention it
    ("No such table: Student", None),
    ("Error accessing result set, column not found: legacyGuardian", 5),
    ("Foreign key constraint failed: Student_guardianId_fkey", 4),
    ("Unique constraint failed: (id)", None),
    ("Null constraint failed: ", None),
])
def test_adapter_pg_own_words_name_unquoted_objects(words, index):
    hint = log_hint(js_log(words, adapter_words=True), SCRIPT)
    assert hint["message"] == words.strip() and hint["sqlstate"] is None
    assert hint["statement_index"] == index, hint


def test_a_js_log_with_nothing_after_its_header_has_no_message():
    hint = log_hint("external connector error\n   0: sql_schema_connector::apply_migration::apply_script", SCRIPT)
    assert hint["message"] is None and hint["how"] == "the log holds no database error Prisma writes"


def test_an_engine_that_numbers_from_the_statement_is_found_by_the_lines_text():
    """If a 7.4+ engine numbers the Position block within the statement it sent, the text still places it."""
    statement = statements_of(SCRIPT)[3].sql
    log = native_log("42P01", 'relation "Guardian" does not exist', statement, at(statement, '"Guardian"'))
    assert "\x1b[1m  1\x1b[1;31m ALTER TABLE" in log
    hint = log_hint(log, SCRIPT)
    assert hint["statement_index"] == 4
    assert "is line 16 of migration.sql, found by its text" in hint["how"]


def test_a_line_that_fits_several_places_gives_none_not_a_guess():
    script = ('CREATE TABLE "A" (\n    "id" INTEGER NOT NULL,\n    "v" TEXT\n);\n'
              'CREATE TABLE "B" (\n    "id" INTEGER NOT NULL,\n    "v" TEXT\n);\n')
    # A stale number (the file changed since) and a line both tables hold.
    log = native_log("42P16", "multiple primary keys are not allowed", None)
    log = log.replace("Database error:\nERROR: multiple primary keys are not allowed",
                      'Database error:\nERROR: multiple primary keys are not allowed\n\nPosition:\n'
                      '\x1b[1m 41\x1b[1;31m     "id" INTEGER NOT NULL,\x1b[0m')
    hint = log_hint(log, script)
    assert hint["statement_index"] is None
    assert "fits lines 2, 6 of migration.sql: not a guess" in hint["how"]


def test_a_line_holding_two_statements_gives_none():
    script = 'UPDATE "A" SET "n" = \'abc\'::integer; UPDATE "B" SET "n" = 1;\n'
    log = native_log("22P02", 'invalid input syntax for type integer: "abc"', script, at(script, "'abc'"))
    hint = log_hint(log, script)
    assert hint["statement_index"] is None
    assert "line 1 holds statements 1, 2" in hint["how"] and "no statement mentions" in hint["how"]


def test_the_position_and_the_error_disagreeing_gives_none():
    log = native_log("42P07", 'relation "Guardian" already exists', SCRIPT, at(SCRIPT, '"guardianId" INTEGER;'))
    hint = log_hint(log, SCRIPT)
    assert hint["statement_index"] is None
    assert hint["how"] == ("the Position block points at statement 2 and the error at statement 1: they disagree")


def test_two_creators_of_a_name_give_none():
    script = 'CREATE INDEX "i" ON "A"("x");\nDROP INDEX "i";\nCREATE INDEX "i" ON "A"("y");\n'
    hint = log_hint(js_log('relation "i" already exists'), script)
    assert hint["statement_index"] is None and "statements 1, 3 create: not a guess" in hint["how"]


@pytest.mark.parametrize("logs, how", [
    (None, "no log: the row's logs is NULL"),
    ("", "the log is empty"),
    ("  \n\t\n", "the log is empty"),
    ("\x1b[0m\x1b[1m\x00\x00", "the log is empty"),
    (12345, "the log is not text"),
    (["ERROR: x"], "the log is not text"),
    ("segmentation fault (core dumped)", "the log holds no database error Prisma writes"),
])
def test_null_empty_and_garbage(logs, how):
    hint = log_hint(logs, SCRIPT)
    assert hint["statement_index"] is None and hint["how"].startswith(how), hint
    assert set(hint) == {"sqlstate", "message", "statement_index", "how"}


def test_no_script_or_an_unparseable_one_still_gives_the_error():
    log = native_log("42P07", 'relation "Guardian" already exists')
    for script, how in ((None, "no migration.sql to match the log against"),
                        ("CREATE TABLE (", "migration.sql has no statement the log could point at")):
        hint = log_hint(log, script)
        assert hint == {"sqlstate": "42P07", "message": 'relation "Guardian" already exists',
                        "statement_index": None, "how": how}


def test_a_huge_log_is_read_only_up_to_its_cap_and_fast():
    real = native_log("42P07", 'relation "Guardian" already exists')
    started = time.monotonic()
    hint = log_hint(real + "\n" + "x" * (20 * 1024 * 1024), SCRIPT)
    assert hint["statement_index"] == 1
    # Past the cap, nothing is read: a Position block there is not seen.
    late = "y" * MAX_LOG_CHARS + native_log("42P07", 'relation "Guardian" already exists')
    assert log_hint(late, SCRIPT)["how"] == "the log holds no database error Prisma writes"
    assert log_hint(("A" * 5000 + "\n") * 20000, SCRIPT)["statement_index"] is None
    assert time.monotonic() - started < 5


def test_nul_bytes_and_ansi_junk_do_not_leak_into_the_hint():
    log = native_log("42P07", 'relation "Guardian" already exists').replace(
        "ERROR: relation", "ERROR: \x00\x1b]0;owned\x07\x1b[2J\x1b[31mrelation")
    hint = log_hint(log, SCRIPT)
    assert hint["message"] == 'relation "Guardian" already exists' and hint["statement_index"] == 1
    assert not any(c in (hint["message"] + hint["how"]) for c in "\x00\x1b\x07")
    # Bytes (a driver that hands back bytea-like values) are read as UTF-8, undecodable bytes replaced.
    assert log_hint(log.encode("utf-8") + b"\xff\xfe", SCRIPT)["statement_index"] == 1


def test_a_hostile_log_with_two_position_blocks_or_too_many_lines_names_nothing():
    block = position_block(SCRIPT, at(SCRIPT, '"legacyGuardian"'))
    two = native_log("42883", "operator does not exist: text = integer", SCRIPT, at(SCRIPT, '"legacyGuardian"'))
    two = two.replace("Database error:\nERROR: operator does not exist: text = integer",
                      "Database error:\nERROR: operator does not exist: text = integer" + block, 1)
    hint = log_hint(two, SCRIPT)
    assert hint["statement_index"] is None and "2 Position blocks" in hint["how"]
    many = "Database error code: 42601\n\nDatabase error:\nERROR: syntax error\n\nPosition:\n" + "\n".join(
        "\x1b[1m%3d\x1b[0m x" % n for n in range(1, 40))
    assert "more numbered lines than Prisma prints" in log_hint(many, SCRIPT)["how"]
    # Two different codes: the SQLSTATE is not told.
    mixed = native_log("42P07", 'relation "Guardian" already exists') + "\nDatabase error code: 23505\n"
    assert log_hint(mixed, SCRIPT)["sqlstate"] is None


def test_long_texts_are_clipped():
    hint = log_hint(js_log('relation "%s" does not exist' % ("n" * 150) + " and more" * 100), SCRIPT)
    assert len(hint["message"]) <= MAX_TEXT and len(hint["how"]) <= MAX_TEXT


def test_it_never_raises_on_mutated_logs_or_odd_statements():
    rng = random.Random(74)
    real = native_log("42883", "operator does not exist: text = integer", SCRIPT, at(SCRIPT, '"legacyGuardian"'))
    alphabet = ["\x00", "\x1b[", "\x1b[1;31m", "\n", "\r", "Position:\n", "Database error:\n", '"', "  7 ", ";",
                "Database error code: ", "\udcff", "\u2028", "ERROR: "]
    for _round in range(400):
        chars = list(real)
        for _edit in range(rng.randint(1, 30)):
            spot = rng.randrange(len(chars) + 1)
            chars.insert(spot, rng.choice(alphabet) if rng.random() < 0.7 else chr(rng.randrange(0, 0x3000)))
        hint = log_hint("".join(chars), SCRIPT)
        assert set(hint) == {"sqlstate", "message", "statement_index", "how"}
        assert hint["statement_index"] in (None, 1, 2, 3, 4, 5)
    # Statements that are not sql_statements' own, and a script that does not hold them.
    for statements in ([object()], [None], "not a list"):
        assert log_hint(real, SCRIPT, statements)["statement_index"] is None
    assert log_hint(real, "SELECT 1;", statements_of(SCRIPT))["statement_index"] is None


def test_the_hint_feeds_no_verdict_and_no_action():
    """Only prisma_migration_info reads failure_log, to report it: evidence, plans and actions never import it."""
    plugins = Path(__file__).resolve().parents[2] / "plugins"
    readers = sorted(str(p.relative_to(plugins)) for p in plugins.rglob("*.py")
                     if p.name != "failure_log.py" and re.search(r"module_utils(\.failure_log| import .*failure_log)",
                                                                 p.read_text()))
    assert readers == ["modules/prisma_migration_info.py"]
