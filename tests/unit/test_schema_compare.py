"""The snapshot comparison the evidence and the drift check share, and the probe rules on snapshots."""

from __future__ import annotations

import copy

from ansible_collections.prisma_ops.migrate.plugins.module_utils.effects import default_text, normalize_catalog_default, type_text
from ansible_collections.prisma_ops.migrate.plugins.module_utils.probes import decide, judge_statements
from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import compare_snapshots, is_empty
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script


def column(typ: str, not_null: bool = False, default: str | None = None) -> dict:
    return {"type": typ, "not_null": not_null, "default": default, "identity": None, "generated": None}


BASE = {
    "schemas": ["public"],
    "tables": {"public.User": {"columns": {"id": column("integer", True, "nextval('public.\"User_id_seq\"'::regclass)"),
                                           "email": column("text", True)}}},
    "indexes": {"public.User_pkey": {"table": "public.User", "unique": True, "primary": True,
                                     "definition": 'CREATE UNIQUE INDEX "User_pkey" ON public."User" USING btree (id)'}},
    "constraints": {"public.User.User_pkey": {"type": "p", "definition": "PRIMARY KEY (id)"}},
    "enums": {"public.Role": ["USER", "ADMIN"]},
    "extensions": {}, "views": {}, "sequences": {"public.User_id_seq": {"type": "integer", "owned_by": "public.User.id"}},
    "functions": {}, "triggers": {},
}


def test_equal_snapshots_have_no_difference():
    assert compare_snapshots(BASE, copy.deepcopy(BASE)) == []


def test_every_kind_of_difference_is_named():
    actual = copy.deepcopy(BASE)
    actual["tables"]["public.User"]["columns"]["email"]["not_null"] = False
    actual["tables"]["public.User"]["columns"]["name"] = column("text")
    actual["enums"]["public.Role"] = ["ADMIN", "USER"]
    del actual["indexes"]["public.User_pkey"]
    actual["extensions"]["pg_trgm"] = {"schema": "public"}
    diffs = {(d["kind"], d["name"], d["difference"]) for d in compare_snapshots(BASE, actual)}
    assert diffs == {("column", "public.User.email", "changed"), ("column", "public.User.name", "unexpected"),
                     ("enum", "public.Role", "changed"), ("index", "public.User_pkey", "missing"),
                     ("extension", "pg_trgm", "unexpected")}


def test_a_missing_table_is_one_difference_not_one_per_column():
    actual = copy.deepcopy(BASE)
    del actual["tables"]["public.User"]
    diffs = compare_snapshots(BASE, actual)
    assert [(d["kind"], d["difference"]) for d in diffs] == [("table", "missing")]


def test_empty():
    assert is_empty({"schemas": ["public"], "tables": {}})
    assert not is_empty(BASE)
    assert not is_empty({"schemas": ["public", "app"]})


def test_declared_types_as_format_type_prints_them():
    def text(sql: str):
        node = parse_script('CREATE TABLE t ("c" %s);' % sql).statements[0].node
        return type_text(node["tableElts"][0]["ColumnDef"]["typeName"], "public")
    assert text("TEXT") == ("text", True)
    assert text("VARCHAR(255)") == ("character varying(255)", True)
    assert text("TIMESTAMP(3)") == ("timestamp(3) without time zone", True)
    assert text("TIMESTAMPTZ(6)") == ("timestamp(6) with time zone", True)
    assert text("DECIMAL(65,30)") == ("numeric(65,30)", True)
    assert text("DOUBLE PRECISION") == ("double precision", True)
    assert text("SERIAL") == ("integer", True)
    assert text('"Role"[]') == ('public."Role"[]', True)
    assert text("INTEGER[]") == ("integer[]", True)


def test_defaults_compare_loosely_with_the_catalog_text():
    def declared(sql: str):
        node = parse_script('CREATE TABLE t ("c" TEXT DEFAULT %s);' % sql).statements[0].node
        return default_text(node["tableElts"][0]["ColumnDef"]["constraints"][0]["Constraint"]["raw_expr"])
    assert declared("'USER'") == normalize_catalog_default("'USER'::public.\"Role\"") == "USER"
    assert declared("CURRENT_TIMESTAMP") == normalize_catalog_default("CURRENT_TIMESTAMP")
    assert declared("false") == normalize_catalog_default("false")
    assert declared("-1") == normalize_catalog_default("'-1'::integer")
    assert declared("gen_random_uuid()") == normalize_catalog_default("gen_random_uuid()")
    assert declared("ARRAY[]::\"Role\"[]") == normalize_catalog_default('ARRAY[]::public."Role"[]')
    assert declared("lower('x')") is None


def judge(script: str, live: dict, before: dict | None = None):
    judged = judge_statements(parse_script(script), "public", live, before)
    return [(s["index"], s["present"]) for s in judged], decide(judged)[0]


def test_add_then_drop_is_judged_in_the_final_state():
    script = ('ALTER TABLE "User" ADD COLUMN "tmp" TEXT;\nUPDATE "User" SET "tmp" = "email";\n'
              'ALTER TABLE "User" DROP COLUMN "tmp";\nALTER TABLE "User" ADD COLUMN "name" TEXT;\n')
    done = copy.deepcopy(BASE)
    done["tables"]["public.User"]["columns"]["name"] = column("text")
    assert judge(script, done) == ([(1, None), (2, None), (3, None), (4, True)], "applied")
    # Nothing ran: "tmp" absent because it was never added, and statement 3 cannot have run after absent 4?
    # No: 4 is the first absent statement, 3 comes before it, so tmp's absence says nothing -> 1 stays null.
    assert judge(script, BASE) == ([(1, None), (2, None), (3, None), (4, False)], "unknown")
    stuck = copy.deepcopy(BASE)
    stuck["tables"]["public.User"]["columns"]["tmp"] = column("text")
    assert judge(script, stuck) == ([(1, True), (2, None), (3, False), (4, False)], "partial")


def test_indistinct_effects_are_null_not_true():
    with_ext = copy.deepcopy(BASE)
    with_ext["extensions"]["pgcrypto"] = {"schema": "public"}
    assert judge('CREATE EXTENSION IF NOT EXISTS "pgcrypto";', with_ext) == ([(1, None)], "unknown")
    assert judge('CREATE EXTENSION "pgcrypto";', with_ext) == ([(1, True)], "applied")
    assert judge('DROP INDEX IF EXISTS "Nope";', BASE) == ([(1, None)], "unknown")
    # Same default as before (known from a shadow "before" snapshot): cannot tell.
    with_default = copy.deepcopy(BASE)
    with_default["tables"]["public.User"]["columns"]["email"]["default"] = "'x'::text"
    assert judge('ALTER TABLE "User" ALTER COLUMN "email" SET DEFAULT \'x\';', with_default, with_default) == ([(1, None)], "unknown")
    assert judge('ALTER TABLE "User" ALTER COLUMN "email" SET DEFAULT \'x\';', with_default, BASE) == ([(1, True)], "applied")
    # Without a before state the old default is unknown: still null.
    assert judge('ALTER TABLE "User" ALTER COLUMN "email" SET DEFAULT \'x\';', with_default) == ([(1, None)], "unknown")


def test_verdict_rules_follow_the_prefix_of_what_ran():
    script = ('CREATE TABLE "A" ("id" INTEGER);\nUPDATE "User" SET "email" = lower("email");\n'
              'CREATE TABLE "B" ("id" INTEGER);\n')
    a = copy.deepcopy(BASE)
    a["tables"]["public.A"] = {"columns": {"id": column("integer")}}
    ab = copy.deepcopy(a)
    ab["tables"]["public.B"] = {"columns": {"id": column("integer")}}
    assert judge(script, ab)[1] == "applied"          # the UPDATE ran before B was created
    assert judge(script, a)[1] == "partial"
    assert judge(script, BASE)[1] == "not_applied"    # A absent: nothing after it ran
    trailing = 'CREATE TABLE "A" ("id" INTEGER);\nUPDATE "User" SET "email" = lower("email");\n'
    assert judge(trailing, a)[1] == "unknown"         # the failure may have been the UPDATE
    leading = 'UPDATE "User" SET "email" = lower("email");\nCREATE TABLE "A" ("id" INTEGER);\n'
    assert judge(leading, BASE)[1] == "unknown"       # the UPDATE may have committed alone


def test_a_table_made_by_hand_with_other_columns_is_half_present():
    hand = copy.deepcopy(BASE)
    hand["tables"]["public.A"] = {"columns": {"id": column("bigint")}}
    judged, verdict = judge('CREATE TABLE "A" ("id" INTEGER, "name" TEXT);\nCREATE INDEX "A_name_idx" ON "A"("name");\n', hand)
    assert judged == [(1, None), (2, False)] and verdict == "partial"
