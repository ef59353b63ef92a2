"""The one verdict rule (docs/evidence.md, "The verdict rule"), held over every statement kind the parser has.

Every parse-tree statement node type is exactly one of: probed (effects.py builds effects for it),
cannot tell (no probe), or neutral (no lasting effect on the schema). A new node type in a new
pglast fails here until someone decides which it is. Then, per class, what the probes and decide() do.
"""

from __future__ import annotations

import inspect

import pytest

from pglast import ast, enums

from ansible_collections.prisma_ops.migrate.plugins.module_utils.effects import (
    CANNOT_TELL_NODES, NEUTRAL_ALTER_TABLE, NEUTRAL_NODES, PROBED_ALTER_TABLE, PROBED_NODES, build_model,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.probes import decide, is_neutral, judge_statements
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script

pytestmark = pytest.mark.unit

# Wrappers, not statements a migration.sql holds.
NOT_STATEMENTS = frozenset(("RawStmt",))

EMPTY = {"schemas": ["public"], "tables": {}, "indexes": {}, "constraints": {}, "enums": {}, "extensions": {},
         "views": {}, "sequences": {}, "functions": {}, "triggers": {}}

# One statement of each probed node type: it must produce effects and no "cannot tell".
PROBED_SAMPLES = {
    "CreateStmt": 'CREATE TABLE "T" ("id" INTEGER NOT NULL)',
    "AlterTableStmt": 'ALTER TABLE "T" ADD COLUMN "x" TEXT',
    "IndexStmt": 'CREATE INDEX "T_x_idx" ON "T"("x")',
    "DropStmt": 'DROP TABLE "T"',
    "RenameStmt": 'ALTER TABLE "T" RENAME TO "U"',
    "CreateEnumStmt": "CREATE TYPE \"E\" AS ENUM ('a')",
    "AlterEnumStmt": "ALTER TYPE \"E\" ADD VALUE 'b'",
    "CreateExtensionStmt": 'CREATE EXTENSION "pgcrypto"',
    "CreateSeqStmt": 'CREATE SEQUENCE "s"',
    "ViewStmt": 'CREATE VIEW "v" AS SELECT 1 AS "one"',
    "CreateTableAsStmt": 'CREATE MATERIALIZED VIEW "m" AS SELECT 1 AS "one"',
    "CreateFunctionStmt": "CREATE FUNCTION f() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
    "CreateTrigStmt": 'CREATE TRIGGER "t" BEFORE UPDATE ON "T" FOR EACH ROW EXECUTE FUNCTION f()',
    "CreateSchemaStmt": 'CREATE SCHEMA "s"',
}
NEUTRAL_SAMPLES = ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT a", "RELEASE a", "SET lock_timeout = '5s'", "RESET ALL",
                   "SHOW search_path", "SELECT 1", 'ALTER TABLE "T" VALIDATE CONSTRAINT "c"']
CANNOT_TELL_SAMPLES = ['INSERT INTO "T" VALUES (1)', 'UPDATE "T" SET "id" = 2', 'DELETE FROM "T"', "DO $$ BEGIN END $$",
                       "SELECT setval('s', 1)", 'SELECT * INTO "copy" FROM "T"', 'COMMENT ON TABLE "T" IS \'x\'',
                       'GRANT SELECT ON "T" TO PUBLIC', 'ALTER TABLE "T" ENABLE ROW LEVEL SECURITY',
                       'CREATE DOMAIN "d" AS integer', 'ALTER SEQUENCE "s" RESTART', 'CREATE TABLE "c" AS SELECT 1',
                       'REFRESH MATERIALIZED VIEW "m"', 'ALTER TYPE "E" OWNER TO CURRENT_USER', 'TRUNCATE "T"']


def statement_node_types() -> set:
    return {name for name, cls in inspect.getmembers(ast, inspect.isclass) if name.endswith("Stmt")} - NOT_STATEMENTS


def test_every_statement_node_type_of_the_parser_has_exactly_one_class():
    classes = (PROBED_NODES, CANNOT_TELL_NODES, NEUTRAL_NODES)
    undecided = sorted(t for t in statement_node_types() if sum(t in c for c in classes) != 1)
    assert undecided == [], "decide for each: probed, cannot tell or neutral (effects.py): %s" % undecided
    # And no class names a type the parser does not have (a typo would silently leave a kind undecided).
    assert (PROBED_NODES | CANNOT_TELL_NODES | NEUTRAL_NODES) - statement_node_types() == set()


def test_every_alter_table_subcommand_is_probed_neutral_or_cannot_tell():
    subtypes = {m.name for m in enums.AlterTableType}
    assert PROBED_ALTER_TABLE <= subtypes and NEUTRAL_ALTER_TABLE <= subtypes
    assert not PROBED_ALTER_TABLE & NEUTRAL_ALTER_TABLE
    for subtype in sorted(subtypes - PROBED_ALTER_TABLE - NEUTRAL_ALTER_TABLE):
        # No probe for it: the statement holding it cannot be told (tested through real statements below).
        assert subtype.startswith("AT_")


def test_the_probed_samples_cover_every_probed_node_type():
    assert set(PROBED_SAMPLES) == set(PROBED_NODES)


@pytest.mark.parametrize("node_type", sorted(PROBED_SAMPLES))
def test_a_probed_statement_has_effects_and_a_finding(node_type):
    parsed = parse_script(PROBED_SAMPLES[node_type] + ";")
    assert parsed.statements[0].node_type == node_type
    model, unchecked = build_model(parsed.statements, "public")
    assert unchecked == {} and [e for e in model.effects if e.stmt == 1]
    judged = judge_statements(parsed, "public", EMPTY, None)
    # Probed: whatever the finding on an empty schema, it is never the "no probe" unknown.
    assert judged[0]["_status"] != "unknown" and judged[0]["checked"]


@pytest.mark.parametrize("sql", NEUTRAL_SAMPLES)
def test_a_neutral_statement_has_no_effect_and_does_not_move_the_verdict(sql):
    parsed = parse_script(sql + ";\nCREATE TABLE \"T2\" (\"id\" INTEGER);\n")
    model, unchecked = build_model(parsed.statements, "public")
    assert 1 not in unchecked and not [e for e in model.effects if e.stmt == 1]
    judged = judge_statements(parsed, "public", EMPTY, None)
    assert is_neutral(judged[0])
    assert decide(judged)[0] == "not_applied"  # a neutral statement first never makes it unknown


@pytest.mark.parametrize("sql", CANNOT_TELL_SAMPLES)
def test_a_cannot_tell_statement_is_unknown_and_blocks_not_applied_before_the_first_absent(sql):
    parsed = parse_script(sql + ";\nCREATE TABLE \"T2\" (\"id\" INTEGER);\n")
    # A cannot-tell node type, or a probed one in a form without a probe (an ALTER TABLE subcommand, CREATE TABLE AS).
    assert parsed.statements[0].node_type in CANNOT_TELL_NODES | {"AlterTableStmt", "CreateTableAsStmt"}
    _model, unchecked = build_model(parsed.statements, "public")
    assert 1 in unchecked
    judged = judge_statements(parsed, "public", EMPTY, None)
    assert judged[0]["_status"] == "unknown" and not is_neutral(judged[0])
    assert decide(judged)[0] == "unknown"


@pytest.mark.parametrize("sql", [
    'CREATE EXTENSION IF NOT EXISTS "pgcrypto"',
    'CREATE OR REPLACE FUNCTION f() RETURNS integer LANGUAGE sql AS \'SELECT 1\'',
    'DROP INDEX IF EXISTS "gone_idx"',
    'DROP TABLE IF EXISTS "Gone"',
    'CREATE SCHEMA IF NOT EXISTS "app"',
])
def test_a_conditional_statement_that_found_nothing_to_tell_is_not_neutral(sql):
    # What such a statement leaves looks the same whether it ran or not: "cannot tell", never neutral,
    # so a partial migration (it committed alone, then the next statement failed) never reads not_applied.
    live = dict(EMPTY, extensions={"pgcrypto": {"schema": "public"}}, schemas=["public", "app"],
                functions={"public.f()": {"kind": "f", "returns": "integer"}})
    parsed = parse_script(sql + ";\nCREATE TABLE \"T2\" (\"id\" INTEGER);\n")
    judged = judge_statements(parsed, "public", live, None)
    assert judged[0]["present"] is None and not is_neutral(judged[0])
    assert decide(judged)[0] == "unknown"


def test_a_superseded_drop_is_not_neutral():
    # DROP INDEX then CREATE INDEX of that name, on a schema where the index is there but its definition
    # cannot be read: the drop cannot be told, and the verdict is not not_applied on the create's absence alone.
    parsed = parse_script('DROP INDEX "i";\nCREATE INDEX "i" ON "T"("x");\nCREATE TABLE "T2" ("id" INTEGER);\n')
    column = {"type": "text", "not_null": False, "default": None, "identity": None, "generated": None}
    live = dict(EMPTY, tables={"public.T": {"columns": {"x": column}}},
                indexes={"public.i": {"table": "public.T", "unique": False, "primary": False, "definition": None}})
    judged = judge_statements(parsed, "public", live, None)
    assert judged[0]["present"] is None and not is_neutral(judged[0])
    assert decide(judged)[0] == "unknown"


# ----------------------------------------------------------------------------------------------------------------
# The replay decides where the probes cannot (evidence.combine)

def _column(typ: str = "integer") -> dict:
    return {"type": typ, "not_null": False, "default": None, "identity": None, "generated": None}


def _function(md5: str) -> dict:
    return {"public.f()": {"kind": "f", "returns": "integer", "definition_md5": md5}}


# Migration N: a column, then a function body replaced (a conditional statement the probes cannot tell).
ADD_THEN_REPLACE = ('ALTER TABLE "T" ADD COLUMN "a" INTEGER;\n'
                    "CREATE OR REPLACE FUNCTION f() RETURNS integer LANGUAGE sql AS 'SELECT 2';\n")
BEFORE = dict(EMPTY, tables={"public.T": {"columns": {"id": _column()}}}, functions=_function("old"))
AFTER = dict(EMPTY, tables={"public.T": {"columns": {"id": _column(), "a": _column()}}}, functions=_function("new"))


def _judge(script: str, live: dict, before: dict | None = None, after: dict | None = None) -> dict:
    before, after = before or BEFORE, after or AFTER
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import judge_migration
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import ShadowResult
    replay = ShadowResult("differs", "", "controller", before=before, after=after)
    return judge_migration("20240101000000_n", script, live, "public", None, replay)


def test_the_replay_decides_applied_when_every_untold_statement_only_changes_the_schema():
    judged = _judge(ADD_THEN_REPLACE, AFTER)
    assert judged["probe_verdict"] == "unknown"  # statement 2 after the last present one cannot be told
    assert judged["verdict"] == "applied", judged["reason"]
    assert "only change the schema" in judged["reason"]


def test_the_replay_decides_partial_when_each_object_is_as_before_or_as_after():
    live = dict(AFTER, functions=_function("old"))  # the column is there, the body is the old one
    judged = _judge(ADD_THEN_REPLACE, live)
    assert judged["probe_verdict"] == "unknown"
    assert judged["verdict"] == "partial", judged["reason"]
    assert "function public.f()" in judged["reason"] and "column public.T.a" in judged["reason"]


def test_the_replay_never_decides_over_a_data_statement_or_drift():
    with_data = ADD_THEN_REPLACE + 'UPDATE "T" SET "a" = 1;\n'
    after_data = _judge(with_data, AFTER)
    assert after_data["verdict"] == "unknown" and "statement 3 changes what a schema snapshot cannot show" in \
        after_data["reason"]
    # A column added by hand elsewhere: the live schema is not "between" the replays.
    drift = dict(AFTER, functions=_function("old"),
                 tables={"public.T": {"columns": {"id": _column(), "a": _column(), "hand": _column("text")}}})
    assert _judge(ADD_THEN_REPLACE, drift)["verdict"] == "unknown"
    # A body that is neither the old nor the new one.
    assert _judge(ADD_THEN_REPLACE, dict(AFTER, functions=_function("third")))["verdict"] == "unknown"


def test_probes_and_replay_disagreeing_stay_unknown():
    # The file is the column alone and the probes see it: applied. The replay's "after" also has another function
    # body, which the live schema lacks: the replay does not say applied, so the verdict is unknown.
    judged = _judge('ALTER TABLE "T" ADD COLUMN "a" INTEGER;\n', dict(BEFORE, tables=AFTER["tables"]),
                    before=BEFORE, after=dict(BEFORE, tables=AFTER["tables"], functions=_function("x")))
    assert judged["probe_verdict"] == "applied" and judged["verdict"] == "unknown", judged["reason"]


def test_after_a_duplicate_object_failure_a_data_statement_keeps_the_verdict_unknown():
    # UPDATE, then a CREATE TABLE that failed because the table was made by hand: the live schema is the "after"
    # one, but whether the UPDATE ran cannot be seen, so the replay does not decide.
    script = 'UPDATE "T" SET "id" = "id" + 0;\nCREATE TABLE "X" ("id" INTEGER);\n'
    before = dict(EMPTY, tables={"public.T": {"columns": {"id": _column()}}})
    after = dict(EMPTY, tables={"public.T": {"columns": {"id": _column()}}, "public.X": {"columns": {"id": _column()}}})
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import judge_migration
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import ShadowResult
    replay = ShadowResult("differs", "", "controller", before=before, after=after)
    judged = judge_migration("20240101000000_n", script, after, "public", {"sqlstate": "42P07"}, replay)
    assert judged["verdict"] == "unknown", judged["reason"]
    assert "statement 1 changes what a schema snapshot cannot show" in judged["reason"]
    # The same failure with no UPDATE in the file: the replay shows the whole effect, and decides.
    clean = judge_migration("20240101000000_n", 'CREATE TABLE "X" ("id" INTEGER);\n', after, "public",
                            {"sqlstate": "42P07"}, ShadowResult("differs", "", "controller", before=before, after=after))
    assert clean["verdict"] == "applied", clean["reason"]
