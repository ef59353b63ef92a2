"""migration.sql split and classified by PostgreSQL's own parser (pglast), on the corpus and on hard cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import SqlParseError, parse_script

CORPUS = Path(__file__).resolve().parents[1] / "evidence_corpus"


def corpus(name: str) -> str:
    return (CORPUS / name / "migration.sql").read_text()


def kinds(script: str) -> list:
    return [(s.index, s.kind, s.target) for s in parse_script(script).statements]


def test_the_21_table_init_is_56_statements_of_the_right_kinds():
    statements = parse_script(corpus("20240101000000_init")).statements
    counts: dict = {}
    for statement in statements:
        counts[statement.kind] = counts.get(statement.kind, 0) + 1
    assert counts == {"create_enum": 2, "create_table": 21, "create_unique_index": 5, "create_index": 3, "add_constraint": 25}
    assert [s.index for s in statements] == list(range(1, 57))
    assert statements[0].target == "Role" and statements[2].target == "School"
    assert statements[-1].target == "AuditLog.AuditLog_actorId_fkey"


def test_a_do_block_with_semicolons_is_one_statement_where_a_naive_split_breaks_it():
    script = corpus("20240301000000_grading_do_block")
    statements = parse_script(script).statements
    assert [(s.index, s.kind) for s in statements] == [
        (1, "do_block"), (2, "create_table"), (3, "create_unique_index"), (4, "add_constraint")]
    assert statements[0].sql.startswith("DO $$") and statements[0].sql.endswith("END $$")
    # A string default holding ';' stays inside its CREATE TABLE.
    assert "'n/a; see teacher'" in statements[1].sql
    # What the JS engine does (split on ';'): 7 pieces, the DO block cut into 4.
    naive = [p for p in (piece.strip() for piece in script.split(";")) if p]
    assert len(naive) == 7 and len(statements) == 4


def test_comments_are_left_out_of_excerpts_and_quoted_identifiers_kept():
    script = '/* header /* nested */ still comment */\n-- CreateTable\nCREATE TABLE "Wei;rd" ("a""b" INTEGER);\n' \
             '-- trailing comment only\n'
    statements = parse_script(script).statements
    assert len(statements) == 1
    assert statements[0].excerpt == 'CREATE TABLE "Wei;rd" ("a""b" INTEGER)'
    assert statements[0].target == "Wei;rd"


def test_dollar_quoted_function_and_trigger():
    script = ('CREATE OR REPLACE FUNCTION touch() RETURNS trigger AS $body$\nBEGIN NEW."updatedAt" = now(); RETURN NEW; END;\n'
              '$body$ LANGUAGE plpgsql;\nCREATE TRIGGER "touch_user" BEFORE UPDATE ON "User" FOR EACH ROW EXECUTE FUNCTION touch();\n')
    assert kinds(script) == [(1, "create_function", "touch"), (2, "create_trigger", "User.touch_user")]


def test_explicit_transaction_control_and_concurrently_are_detected():
    explicit = parse_script(corpus("20240415000000_explicit_commit"))
    assert explicit.has_transaction_control and not explicit.has_concurrently
    assert [s.kind for s in explicit.statements][:3] == ["begin", "create_table", "commit"]
    concurrent = parse_script(corpus("20240401000000_concurrent_index"))
    assert concurrent.has_concurrently and not concurrent.has_transaction_control
    plain = parse_script(corpus("20240115000000_guardians"))
    assert not plain.has_transaction_control and not plain.has_concurrently
    assert parse_script("DROP INDEX CONCURRENTLY \"a\";").has_concurrently
    assert parse_script("START TRANSACTION; END;").has_transaction_control


def test_prisma_kinds_and_targets():
    script = corpus("20240201000000_rename_notice") + corpus("20240215000000_enum_values") + corpus("20240515000000_add_then_drop")
    assert kinds(script) == [
        (1, "rename_table", "Notice -> Announcement"),
        (2, "rename_constraint", "Announcement.Notice_pkey -> Announcement_pkey"),
        (3, "rename_constraint", "Announcement.Notice_schoolId_fkey -> Announcement_schoolId_fkey"),
        (4, "rename_column", "Announcement.body -> content"),
        (5, "rename_index", "Payment_feeId_idx -> Payment_fee_idx"),
        (6, "add_enum_value", "AttendanceStatus.EXCUSED"),
        (7, "rename_enum_value", "Role.TEACHER -> STAFF"),
        (8, "set_default", "User.role"),
        (9, "add_column", "Payment.tmp_ref"),
        (10, "update", "Payment"),
        (11, "add_column", "Payment.externalRef"),
        (12, "update", "Payment"),
        (13, "drop_column", "Payment.tmp_ref"),
        (14, "drop_index", "Payment_reference_idx"),
        (15, "create_extension", "pg_trgm"),
    ]
    more = ('ALTER TABLE "public"."A" ALTER COLUMN "x" SET DATA TYPE TEXT, ALTER COLUMN "x" SET NOT NULL;\n'
            'ALTER TABLE "A" ALTER COLUMN "x" DROP DEFAULT;\nALTER TABLE "A" DROP CONSTRAINT "A_x_key";\n'
            'CREATE SEQUENCE "s";\nCREATE VIEW "v" AS SELECT 1;\nDROP TABLE "public"."B";\nDELETE FROM "C";\nSET search_path = x;\n')
    assert kinds(more) == [(1, "alter_table", "public.A"), (2, "drop_default", "A.x"), (3, "drop_constraint", "A.A_x_key"),
                           (4, "create_sequence", "s"), (5, "create_view", "v"), (6, "drop_table", "public.B"),
                           (7, "delete", "C"), (8, "set", "search_path")]


def test_offsets_are_right_after_non_ascii_text():
    script = "-- Élève, café\nCREATE TABLE \"Élève\" (\"nom\" TEXT DEFAULT 'é;è');\nCREATE INDEX \"i\" ON \"Élève\"(\"nom\");\n"
    statements = parse_script(script).statements
    assert statements[0].sql == "CREATE TABLE \"Élève\" (\"nom\" TEXT DEFAULT 'é;è')"
    assert statements[1].sql == 'CREATE INDEX "i" ON "Élève"("nom")'


def test_long_statements_get_short_one_line_excerpts():
    script = 'CREATE TABLE "T" (\n' + ",\n".join('    "c%d" TEXT' % i for i in range(40)) + "\n);"
    statement = parse_script(script).statements[0]
    assert len(statement.excerpt) == 100 and statement.excerpt.endswith("...") and "\n" not in statement.excerpt


def test_invalid_sql_says_where():
    with pytest.raises(SqlParseError) as info:
        parse_script('CREATE TABLE "A" ("id" INTEGER);\nCREATE TABLE "B" ("id" INTEGER;\n')
    assert "line 2" in info.value.msg and "syntax error" in info.value.msg


def test_empty_and_comment_only_scripts_have_no_statements():
    assert parse_script("").statements == []
    assert parse_script("-- This is an empty migration.\n").statements == []


@pytest.mark.parametrize("script, words", [
    # libpg_query reads a C string: without the check, everything after the NUL would silently vanish.
    ('CREATE TABLE "T" ("id" INTEGER);\n\x00\nDROP TABLE "B";\n', "at line 2: it holds a NUL byte"),
    ('CREATE TABLE "T" ("id" INTEGER);\nDROP TABLE "B";\x00', "at line 2: it holds a NUL byte"),
    ("SELECT '\x00';", "NUL byte"),
    # Undecodable bytes, as errors="surrogateescape" keeps them, and a lone surrogate.
    (b'CREATE TABLE "T" ("n" TEXT DEFAULT \'\xff\');'.decode("utf-8", "surrogateescape"), "not valid UTF-8 at line 1"),
    ('SELECT 1;\nSELECT \'\ud800\';', "not valid UTF-8 at line 2"),
])
def test_unparseable_text_is_a_parse_error_never_a_shorter_script(script, words):
    with pytest.raises(SqlParseError) as err:
        parse_script(script)
    assert words in err.value.msg
