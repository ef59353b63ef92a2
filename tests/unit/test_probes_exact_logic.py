"""Definition-exact probes as pure logic: a migration judged against snapshots whose definition texts are
what pg_get_constraintdef / pg_get_indexdef print (search_path = pg_catalog), no database."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.effects import (
    catalog_definition, constraint_definition, index_definition,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.probes import decide, judge_statements
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script

pytestmark = pytest.mark.unit


def column(typ: str, not_null: bool = False, default: str | None = None) -> dict:
    return {"type": typ, "not_null": not_null, "default": default, "identity": None, "generated": None}


BASE = {
    "schemas": ["public"],
    "tables": {
        "public.A": {"columns": {"id": column("integer", True)}},
        "public.B": {"columns": {"id": column("integer", True), "aId": column("integer", True),
                                 "active": column("boolean", True, "true")}},
    },
    "indexes": {"public.B_aId_idx": {"table": "public.B", "unique": False, "primary": False,
                                     "definition": 'CREATE INDEX "B_aId_idx" ON public."B" USING btree ("aId")'}},
    "constraints": {"public.B.B_aId_fkey": {"type": "f", "definition":
                                            'FOREIGN KEY ("aId") REFERENCES public."A"(id) ON UPDATE CASCADE ON DELETE RESTRICT'}},
    "enums": {}, "extensions": {}, "views": {}, "sequences": {}, "functions": {}, "triggers": {},
}

FK_CHANGE = ('ALTER TABLE "B" DROP CONSTRAINT "B_aId_fkey";\n'
             'ALTER TABLE "B" ADD CONSTRAINT "B_aId_fkey" FOREIGN KEY ("aId") REFERENCES "A"("id") '
             'ON DELETE CASCADE ON UPDATE CASCADE;\n')
CASCADE = 'FOREIGN KEY ("aId") REFERENCES public."A"(id) ON UPDATE CASCADE ON DELETE CASCADE'


def judge(script: str, live: dict) -> tuple:
    judged = judge_statements(parse_script(script), "public", live, None)
    return [s["present"] for s in judged], decide(judged)[0]


def with_fk(definition: str | None) -> dict:
    live = copy.deepcopy(BASE)
    if definition is None:
        del live["constraints"]["public.B.B_aId_fkey"]
    else:
        live["constraints"]["public.B.B_aId_fkey"]["definition"] = definition
    return live


def test_fk_action_change_nothing_ran_is_not_applied_never_applied():
    assert judge(FK_CHANGE, BASE) == ([False, False], "not_applied")


def test_fk_action_change_only_the_drop_ran_is_partial():
    assert judge(FK_CHANGE, with_fk(None)) == ([True, False], "partial")


def test_fk_action_change_both_ran_is_applied():
    assert judge(FK_CHANGE, with_fk(CASCADE)) == ([None, True], "applied")


def test_drop_constraint_then_drop_table():
    script = 'ALTER TABLE "B" DROP CONSTRAINT "B_aId_fkey";\nDROP TABLE "B";\n'
    assert judge(script, BASE)[1] == "not_applied"
    assert judge(script, with_fk(None)) == ([True, False], "partial")
    gone = copy.deepcopy(BASE)
    del gone["tables"]["public.B"], gone["constraints"]["public.B.B_aId_fkey"], gone["indexes"]["public.B_aId_idx"]
    assert judge(script, gone)[1] == "applied"


@pytest.mark.parametrize("written, printed, expected", [
    # Defaults PostgreSQL leaves out: NO ACTION, MATCH SIMPLE, NOT DEFERRABLE; quoting and schema qualification.
    ('FOREIGN KEY ("aId") REFERENCES "A"("id")', 'FOREIGN KEY ("aId") REFERENCES public."A"(id)', (True, True)),
    ('FOREIGN KEY ("aId") REFERENCES public."A"(id) MATCH SIMPLE ON DELETE NO ACTION NOT DEFERRABLE',
     'FOREIGN KEY ("aId") REFERENCES public."A"(id)', (True, True)),
    ('FOREIGN KEY ("aId") REFERENCES "A"("id") ON DELETE SET NULL', 'FOREIGN KEY ("aId") REFERENCES public."A"(id)',
     (False, True)),
    ('FOREIGN KEY ("aId") REFERENCES "A"("id") MATCH FULL', 'FOREIGN KEY ("aId") REFERENCES public."A"(id)', (False, True)),
    ('FOREIGN KEY ("aId") REFERENCES "A"("id") DEFERRABLE INITIALLY DEFERRED',
     'FOREIGN KEY ("aId") REFERENCES public."A"(id) DEFERRABLE INITIALLY DEFERRED', (True, True)),
    ('FOREIGN KEY ("aId") REFERENCES "A"("id") DEFERRABLE', 'FOREIGN KEY ("aId") REFERENCES public."A"(id)', (False, True)),
    ('FOREIGN KEY ("aId") REFERENCES "other"."A"("id")', 'FOREIGN KEY ("aId") REFERENCES public."A"(id)', (False, True)),
    ('FOREIGN KEY ("aId") REFERENCES "A"("id") ON DELETE SET NULL ("aId")',
     'FOREIGN KEY ("aId") REFERENCES public."A"(id) ON DELETE SET NULL ("aId")', (True, True)),
    # A NOT VALID constraint later validated is the same definition.
    ('FOREIGN KEY ("aId") REFERENCES "A"("id") NOT VALID', 'FOREIGN KEY ("aId") REFERENCES public."A"(id)', (True, True)),
    # Without referenced columns: the primary key, which the catalog prints by name: cannot tell.
    ('FOREIGN KEY ("aId") REFERENCES "A"', 'FOREIGN KEY ("aId") REFERENCES public."A"(id)', (False, False)),
    ('PRIMARY KEY ("id")', "PRIMARY KEY (id)", (True, True)),
    ('UNIQUE ("aId", "id")', 'UNIQUE ("aId", id)', (True, True)),
    ('UNIQUE ("id", "aId")', 'UNIQUE ("aId", id)', (False, True)),
    ('UNIQUE NULLS NOT DISTINCT ("aId") INCLUDE ("id")', 'UNIQUE NULLS NOT DISTINCT ("aId") INCLUDE (id)', (True, True)),
    ('UNIQUE ("aId") INCLUDE ("id")', 'UNIQUE ("aId")', (False, True)),
    # Checks: an expression printed back as written compares; one PostgreSQL rewrites cannot be told.
    ('CHECK ("aId" > 0)', 'CHECK (("aId" > 0))', (True, True)),
    ('CHECK ("aId" > 0)', 'CHECK (("aId" > 1))', (False, False)),
    ("CHECK (\"kind\" IN ('a', 'b'))", "CHECK ((kind = ANY (ARRAY['a'::text, 'b'::text])))", (False, False)),
])
def test_constraint_definitions_compare_as_parse_trees(written, printed, expected):
    node = parse_script('ALTER TABLE "B" ADD CONSTRAINT "c" %s;' % written).statements[0].node
    mine = constraint_definition(node["cmds"][0]["AlterTableCmd"]["def"]["Constraint"], "public.B", "public")
    assert mine.compare(catalog_definition("constraint", "public.B", printed)) == expected


@pytest.mark.parametrize("written, printed, expected", [
    ('CREATE INDEX "i" ON "B"("aId")', 'CREATE INDEX i ON public."B" USING btree ("aId")', (True, True)),
    ('CREATE INDEX "i" ON "B"("aId" ASC NULLS LAST)', 'CREATE INDEX i ON public."B" USING btree ("aId")', (True, True)),
    ('CREATE INDEX "i" ON "B"("aId" DESC)', 'CREATE INDEX i ON public."B" USING btree ("aId" DESC)', (True, True)),
    ('CREATE INDEX "i" ON "B"("aId" DESC NULLS FIRST)', 'CREATE INDEX i ON public."B" USING btree ("aId" DESC)', (True, True)),
    ('CREATE INDEX "i" ON "B"("aId" DESC NULLS LAST)', 'CREATE INDEX i ON public."B" USING btree ("aId" DESC)', (False, True)),
    ('CREATE INDEX "i" ON "B"("aId")', 'CREATE UNIQUE INDEX i ON public."B" USING btree ("aId")', (False, True)),
    ('CREATE INDEX "i" ON "B" USING HASH ("aId")', 'CREATE INDEX i ON public."B" USING btree ("aId")', (False, True)),
    ('CREATE INDEX "i" ON "B"("aId", "id")', 'CREATE INDEX i ON public."B" USING btree (id, "aId")', (False, True)),
    ('CREATE INDEX "i" ON "B"("aId") INCLUDE ("id")', 'CREATE INDEX i ON public."B" USING btree ("aId") INCLUDE (id)',
     (True, True)),
    ('CREATE INDEX "i" ON "B"("aId")', 'CREATE INDEX i ON public."B" USING btree ("aId") INCLUDE (id)', (False, True)),
    ('CREATE INDEX "i" ON "B"("n" text_pattern_ops)', 'CREATE INDEX i ON public."B" USING btree (n text_pattern_ops)',
     (True, True)),
    ('CREATE INDEX "i" ON "B"("n")', 'CREATE INDEX i ON public."B" USING btree (n text_pattern_ops)', (False, True)),
    # A default operator class written out is left out by pg_get_indexdef: cannot tell, never "differs".
    ('CREATE INDEX "i" ON "B"("n" text_ops)', 'CREATE INDEX i ON public."B" USING btree (n)', (False, False)),
    ('CREATE INDEX "i" ON "B"("aId") WHERE "active"', 'CREATE INDEX i ON public."B" USING btree ("aId") WHERE active',
     (True, True)),
    ('CREATE INDEX "i" ON "B"("aId") WHERE "active"', 'CREATE INDEX i ON public."B" USING btree ("aId")', (False, False)),
    ('CREATE INDEX "i" ON "B"(lower("n"))', 'CREATE INDEX i ON public."B" USING btree (lower(n))', (True, True)),
    ('CREATE INDEX "i" ON "B"(lower("n"))', 'CREATE INDEX i ON public."B" USING btree (lower((n)::text))', (False, False)),
    ('CREATE UNIQUE INDEX "i" ON "B"("aId") NULLS NOT DISTINCT',
     'CREATE UNIQUE INDEX i ON public."B" USING btree ("aId") NULLS NOT DISTINCT', (True, True)),
])
def test_index_definitions_compare_as_parse_trees(written, printed, expected):
    mine = index_definition(parse_script(written).statements[0].node, "public")
    assert mine.compare(catalog_definition("index", "public.B", printed)) == expected


def test_an_unreadable_catalog_definition_is_cannot_tell():
    live = with_fk("this is not SQL")
    present, verdict = judge(FK_CHANGE, live)
    assert present == [None, None] and verdict == "unknown"


def test_an_index_redefined_under_its_name():
    script = 'DROP INDEX "B_aId_idx";\nCREATE UNIQUE INDEX "B_aId_idx" ON "B"("aId", "id");\n'
    assert judge(script, BASE) == ([False, False], "not_applied")
    only_drop = copy.deepcopy(BASE)
    del only_drop["indexes"]["public.B_aId_idx"]
    assert judge(script, only_drop) == ([True, False], "partial")
    done = copy.deepcopy(BASE)
    done["indexes"]["public.B_aId_idx"] = {"table": "public.B", "unique": True, "primary": False, "definition":
                                           'CREATE UNIQUE INDEX "B_aId_idx" ON public."B" USING btree ("aId", id)'}
    assert judge(script, done) == ([None, True], "applied")


def test_boolean_set_default_false_is_compared():
    script = 'ALTER TABLE "B" ALTER COLUMN "active" SET DEFAULT false;\n'
    present, verdict = judge(script, BASE)
    assert present == [False] and verdict == "not_applied"
    done = copy.deepcopy(BASE)
    done["tables"]["public.B"]["columns"]["active"]["default"] = "false"
    # The old value is unknown without a replay: as expected, but it may have been false already.
    assert judge(script, done) == ([None], "unknown")


@pytest.mark.parametrize("literal, printed, differs", [
    ("0", "1", True), ("'a'", "'b'::text", True), ("'A'", "'B'::public.\"Role\"", True),
    ("'2024-01-01'", "'2024-01-01 00:00:00'::timestamp without time zone", False), ("now()", "CURRENT_TIMESTAMP", False),
])
def test_literal_defaults_that_differ_are_certain_others_cannot_be_told(literal, printed, differs):
    live = copy.deepcopy(BASE)
    live["tables"]["public.B"]["columns"]["aId"]["default"] = printed
    present, _verdict = judge('ALTER TABLE "B" ALTER COLUMN "aId" SET DEFAULT %s;\n' % literal, live)
    assert present == [False if differs else None]
