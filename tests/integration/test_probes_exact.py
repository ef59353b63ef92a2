"""Definition-exact statement probes on real PostgreSQL 15 (issue 12, "Method 1").

Each case is a prior schema and a migration in Prisma's style. The migration is applied on top of
the prior schema one statement at a time in a throwaway database, and after every prefix (nothing,
each statement k, all of it) the catalogs are snapshotted and judged by the probes alone (no shadow
replay: the hosts without CREATEDB). The bar: nothing ran reads not_applied, all of it applied,
anything in between partial or unknown; never a wrong applied / not_applied.
"""

from __future__ import annotations

import contextlib

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.probes import decide, judge_statements
from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import take_snapshot
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script

FK_CHANGE_PRIOR = '''
CREATE TABLE "A" ("id" SERIAL NOT NULL, CONSTRAINT "A_pkey" PRIMARY KEY ("id"));
CREATE TABLE "B" ("id" SERIAL NOT NULL, "aId" INTEGER NOT NULL, CONSTRAINT "B_pkey" PRIMARY KEY ("id"));
ALTER TABLE "B" ADD CONSTRAINT "B_aId_fkey" FOREIGN KEY ("aId") REFERENCES "A"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
'''

ROLE_PRIOR = '''
CREATE TYPE "Role" AS ENUM ('ADMIN', 'TEACHER', 'STUDENT', 'GUEST');
CREATE TABLE "User" ("id" SERIAL NOT NULL, "role" "Role" NOT NULL DEFAULT 'STUDENT', "active" BOOLEAN NOT NULL DEFAULT true,
    "legacy" TEXT, "nick" VARCHAR(20), "email" TEXT NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
'''

CASES = {
    # Prisma's standard foreign-key change: the name stays, the ON DELETE rule changes.
    "fk_action_change": (FK_CHANGE_PRIOR, '''
-- DropForeignKey
ALTER TABLE "B" DROP CONSTRAINT "B_aId_fkey";

-- AddForeignKey
ALTER TABLE "B" ADD CONSTRAINT "B_aId_fkey" FOREIGN KEY ("aId") REFERENCES "A"("id") ON DELETE CASCADE ON UPDATE CASCADE;
'''),
    "fk_deferrable_and_match_change": (FK_CHANGE_PRIOR, '''
ALTER TABLE "B" DROP CONSTRAINT "B_aId_fkey";
ALTER TABLE "B" ADD CONSTRAINT "B_aId_fkey" FOREIGN KEY ("aId") REFERENCES "A"("id") MATCH FULL ON DELETE RESTRICT
    ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED;
'''),
    "drop_constraint_then_table": (FK_CHANGE_PRIOR, '''
-- DropForeignKey
ALTER TABLE "B" DROP CONSTRAINT "B_aId_fkey";

-- DropTable
DROP TABLE "B";
'''),
    # Prisma's enum-value removal, in the BEGIN/COMMIT it writes around it.
    "enum_value_removal": (ROLE_PRIOR, '''
-- AlterEnum
BEGIN;
CREATE TYPE "Role_new" AS ENUM ('ADMIN', 'TEACHER', 'STUDENT');
ALTER TABLE "User" ALTER COLUMN "role" DROP DEFAULT;
ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");
ALTER TYPE "Role" RENAME TO "Role_old";
ALTER TYPE "Role_new" RENAME TO "Role";
DROP TYPE "Role_old";
ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT 'STUDENT';
COMMIT;
'''),
    "drop_and_add_column_in_one_statement": (ROLE_PRIOR, '''
-- AlterTable
ALTER TABLE "User" DROP COLUMN "legacy",
ADD COLUMN     "legacy" INTEGER NOT NULL DEFAULT 0;
'''),
    "drop_column_then_rename_another_into_its_name": (ROLE_PRIOR, '''
ALTER TABLE "User" DROP COLUMN "legacy";
ALTER TABLE "User" RENAME COLUMN "nick" TO "legacy";
'''),
    "column_renames_after_the_tables_rename": ('''
CREATE TABLE "Notice" ("id" SERIAL NOT NULL, "body" TEXT NOT NULL, "title" TEXT, CONSTRAINT "Notice_pkey" PRIMARY KEY ("id"));
CREATE INDEX "Notice_title_idx" ON "Notice"("title");
''', '''
ALTER TABLE "Notice" RENAME TO "Announcement";
ALTER TABLE "Announcement" RENAME CONSTRAINT "Notice_pkey" TO "Announcement_pkey";
ALTER TABLE "Announcement" RENAME COLUMN "body" TO "content";
ALTER TABLE "Announcement" RENAME COLUMN "title" TO "heading";
ALTER INDEX "Notice_title_idx" RENAME TO "Announcement_heading_idx";
'''),
    "boolean_set_default_false": (ROLE_PRIOR, '''
-- AlterTable
ALTER TABLE "User" ALTER COLUMN "active" SET DEFAULT false;
CREATE INDEX "User_active_idx" ON "User"("active");
'''),
    "index_redefined_under_its_name": (ROLE_PRIOR, '''
-- DropIndex
DROP INDEX "User_email_key";

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email", "role") WHERE "active";
'''),
    "index_order_opclass_method_include": (ROLE_PRIOR + 'CREATE INDEX "User_nick_idx" ON "User"("nick");\n', '''
DROP INDEX "User_nick_idx";
CREATE INDEX "User_nick_idx" ON "User"("nick" DESC NULLS LAST);
DROP INDEX "User_email_key";
CREATE UNIQUE INDEX "User_email_key" ON "User"("email" text_pattern_ops) INCLUDE ("nick");
CREATE INDEX "User_legacy_idx" ON "User" USING HASH ("legacy");
'''),
    "create_table_if_not_exists_then_more": (ROLE_PRIOR, '''
CREATE TABLE IF NOT EXISTS "Tag" ("id" SERIAL NOT NULL, "name" TEXT NOT NULL, CONSTRAINT "Tag_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX IF NOT EXISTS "Tag_name_key" ON "Tag"("name");
ALTER TABLE "User" ADD COLUMN "tagId" INTEGER;
ALTER TABLE "User" ADD CONSTRAINT "User_tagId_fkey" FOREIGN KEY ("tagId") REFERENCES "Tag"("id") ON DELETE SET NULL ON UPDATE CASCADE;
'''),
    "drop_if_exists_first": (ROLE_PRIOR, '''
DROP INDEX IF EXISTS "User_email_key";
ALTER TABLE "User" ADD COLUMN "phone" TEXT;
CREATE UNIQUE INDEX "User_email_phone_key" ON "User"("email", "phone");
'''),
    # Attacks: names that break naive quoting and splitting, and renames that move what is referenced.
    "quoted_identifiers_with_dots_and_quotes": ('''
CREATE TABLE "we.ird""T" ("id" SERIAL NOT NULL, "a.b" INTEGER, "Mixed" TEXT, CONSTRAINT "we.ird""T_pkey" PRIMARY KEY ("id"));
CREATE TABLE "Ref" ("id" SERIAL NOT NULL, "tId" INTEGER, CONSTRAINT "Ref_pkey" PRIMARY KEY ("id"));
ALTER TABLE "Ref" ADD CONSTRAINT "Ref.t""fk" FOREIGN KEY ("tId") REFERENCES "we.ird""T"("id") ON DELETE RESTRICT;
''', '''
ALTER TABLE "Ref" DROP CONSTRAINT "Ref.t""fk";
ALTER TABLE "Ref" ADD CONSTRAINT "Ref.t""fk" FOREIGN KEY ("tId") REFERENCES "we.ird""T"("id") ON DELETE SET NULL;
CREATE INDEX "we.ird""T_a.b_idx" ON "we.ird""T"("a.b", "Mixed");
'''),
    "same_constraint_name_on_two_tables": ('''
CREATE TABLE "P" ("id" SERIAL NOT NULL, CONSTRAINT "P_pkey" PRIMARY KEY ("id"));
CREATE TABLE "X" ("id" SERIAL NOT NULL, "pId" INTEGER, CONSTRAINT "X_pkey" PRIMARY KEY ("id"));
CREATE TABLE "Y" ("id" SERIAL NOT NULL, "pId" INTEGER, CONSTRAINT "Y_pkey" PRIMARY KEY ("id"));
ALTER TABLE "X" ADD CONSTRAINT "p_fk" FOREIGN KEY ("pId") REFERENCES "P"("id") ON DELETE RESTRICT;
ALTER TABLE "Y" ADD CONSTRAINT "p_fk" FOREIGN KEY ("pId") REFERENCES "P"("id") ON DELETE RESTRICT;
''', '''
ALTER TABLE "X" DROP CONSTRAINT "p_fk";
ALTER TABLE "X" ADD CONSTRAINT "p_fk" FOREIGN KEY ("pId") REFERENCES "P"("id") ON DELETE CASCADE;
'''),
    "fk_to_a_table_renamed_later": ('''
CREATE TABLE "Old" ("id" SERIAL NOT NULL, CONSTRAINT "Old_pkey" PRIMARY KEY ("id"));
CREATE TABLE "C" ("id" SERIAL NOT NULL, "oId" INTEGER, CONSTRAINT "C_pkey" PRIMARY KEY ("id"));
''', '''
ALTER TABLE "C" ADD CONSTRAINT "C_oId_fkey" FOREIGN KEY ("oId") REFERENCES "Old"("id") ON DELETE CASCADE;
ALTER TABLE "Old" RENAME TO "New";
ALTER TABLE "New" RENAME CONSTRAINT "Old_pkey" TO "New_pkey";
'''),
    "index_renamed_later": (ROLE_PRIOR, '''
CREATE INDEX "User_nick_idx" ON "User"("nick");
ALTER INDEX "User_nick_idx" RENAME TO "User_nickname_idx";
'''),
    "enum_created_then_renamed": (ROLE_PRIOR, '''
CREATE TYPE "Level_tmp" AS ENUM ('LOW', 'HIGH');
ALTER TABLE "User" ADD COLUMN "level" "Level_tmp";
ALTER TYPE "Level_tmp" RENAME TO "Level";
'''),
    "index_on_a_column_dropped_later": (ROLE_PRIOR, '''
CREATE INDEX "User_nick_idx" ON "User"("nick");
ALTER TABLE "User" ADD COLUMN "nickname" TEXT;
ALTER TABLE "User" DROP COLUMN "nick";
'''),
    "fk_whose_columns_are_renamed_later": (FK_CHANGE_PRIOR, '''
ALTER TABLE "B" DROP CONSTRAINT "B_aId_fkey";
ALTER TABLE "B" ADD CONSTRAINT "B_aId_fkey" FOREIGN KEY ("aId") REFERENCES "A"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "B" RENAME COLUMN "aId" TO "parentId";
ALTER TABLE "A" RENAME COLUMN "id" TO "key";
'''),
    "column_dropped_then_its_table_renamed": (ROLE_PRIOR, '''
ALTER TABLE "User" DROP COLUMN "legacy";
ALTER TABLE "User" RENAME TO "Account";
ALTER TABLE "Account" RENAME CONSTRAINT "User_pkey" TO "Account_pkey";
'''),
    "table_created_then_renamed": (ROLE_PRIOR, '''
CREATE TABLE "Draft" ("id" SERIAL NOT NULL, "note" TEXT, CONSTRAINT "Draft_pkey" PRIMARY KEY ("id"));
ALTER TABLE "Draft" RENAME TO "Note";
ALTER TABLE "Note" RENAME COLUMN "note" TO "text";
'''),
}

# The schema of the inspected database (Prisma's ?schema=), for the cases in a non-public schema.
SCHEMA_CASES = {
    "non_public_schema_fk_change": ("tenant", '''
CREATE SCHEMA "tenant";
SET search_path TO "tenant";
''' + FK_CHANGE_PRIOR, '''
ALTER TABLE "B" DROP CONSTRAINT "B_aId_fkey";
ALTER TABLE "B" ADD CONSTRAINT "B_aId_fkey" FOREIGN KEY ("aId") REFERENCES "A"("id") ON DELETE CASCADE ON UPDATE CASCADE;
'''),
    "schema_qualified_names": ("tenant", '''
CREATE SCHEMA "tenant";
SET search_path TO "tenant";
''' + FK_CHANGE_PRIOR, '''
ALTER TABLE "tenant"."B" DROP CONSTRAINT "B_aId_fkey";
ALTER TABLE "tenant"."B" ADD CONSTRAINT "B_aId_fkey" FOREIGN KEY ("aId") REFERENCES "tenant"."A"("id") ON DELETE SET NULL ON UPDATE CASCADE;
CREATE INDEX "B_aId_idx" ON "tenant"."B"("aId");
'''),
}

# Cases where a state in between may honestly read unknown; every other in-between state must be partial.
# Nothing ran / all ran must always be exact.


def prefix_verdicts(pg_cluster, prior: str, migration: str, schema: str = "public") -> list:
    """[(statements run, verdict, reason)] for every prefix of the migration, probes only."""
    parsed = parse_script(migration)
    database = pg_cluster.create_database()
    try:
        with contextlib.closing(database.connect()) as conn, conn.cursor() as cur:
            for statement in parse_script(prior).statements:  # one by one: CREATE INDEX CONCURRENTLY needs it
                cur.execute(statement.sql)
            cur.execute("SET search_path TO %s" % ('"%s"' % schema))
            verdicts = []
            for ran in range(len(parsed.statements) + 1):
                if ran:
                    statement = parsed.statements[ran - 1]
                    if not statement.is_transaction_control:  # each statement commits alone (Prisma >= 7.4)
                        cur.execute(statement.sql)
                judged = judge_statements(parsed, schema, take_snapshot(conn), None)
                verdict, reason = decide(judged)
                verdicts.append((ran, verdict, reason))
            # BEGIN / COMMIT change nothing: the prefixes around them are the same schema.
            changes = [s.index for s in parsed.statements if not s.is_transaction_control]
            return [(ran, verdict, reason, "none" if not changes or ran < changes[0] else "all" if ran >= changes[-1]
                     else "some") for ran, verdict, reason in verdicts]
    finally:
        pg_cluster.drop_database(database.name)


EXPECTED = {"none": ("not_applied",), "all": ("applied",), "some": ("partial", "unknown")}


def assert_exact_ends(verdicts: list) -> None:
    wrong = [(ran, verdict, reason) for ran, verdict, reason, state in verdicts if verdict not in EXPECTED[state]]
    assert wrong == [], "\n".join("%d run: %s (%s)" % w for w in wrong)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_prefix_of_the_migration(pg_cluster, name):
    prior, migration = CASES[name]
    assert_exact_ends(prefix_verdicts(pg_cluster, prior, migration))


@pytest.mark.parametrize("name", sorted(SCHEMA_CASES))
def test_every_prefix_in_a_non_public_schema(pg_cluster, name):
    schema, prior, migration = SCHEMA_CASES[name]
    assert_exact_ends(prefix_verdicts(pg_cluster, prior, migration, schema))


def test_fk_action_change_reads_each_state_and_says_why(pg_cluster):
    prior, migration = CASES["fk_action_change"]
    verdicts = prefix_verdicts(pg_cluster, prior, migration)
    assert [v[1] for v in verdicts] == ["not_applied", "partial", "applied"]
    assert verdicts[1][2].startswith("statements 1 present, 2 absent")


def test_in_between_states_of_the_enum_removal_are_partial(pg_cluster):
    prior, migration = CASES["enum_value_removal"]
    verdicts = prefix_verdicts(pg_cluster, prior, migration)
    # BEGIN (1) changes nothing: 0 and 1 statements run are the same schema.
    assert [v[1] for v in verdicts[:2]] == ["not_applied", "not_applied"]
    assert {v[1] for v in verdicts[2:-2]} == {"partial"}
    assert [v[1] for v in verdicts[-2:]] == ["applied", "applied"]  # the last is COMMIT


def test_check_constraint_rewritten_by_postgres_is_cannot_tell_never_present_by_name(pg_cluster):
    prior = 'CREATE TABLE "Fee" ("id" SERIAL NOT NULL, "amount" INTEGER NOT NULL, "kind" TEXT,\n' \
            '  CONSTRAINT "Fee_amount_check" CHECK ("amount" > 0));\n'
    migration = ('ALTER TABLE "Fee" DROP CONSTRAINT "Fee_amount_check";\n'
                 'ALTER TABLE "Fee" ADD CONSTRAINT "Fee_amount_check" CHECK ("amount" >= 0 AND "kind" IN (\'a\', \'b\'));\n')
    verdicts = prefix_verdicts(pg_cluster, prior, migration)
    # Nothing ran: the old check of that name is there, and PostgreSQL prints the new one rewritten
    # (= ANY (ARRAY[...]), casts): the probe cannot tell, so the verdict is never applied.
    assert verdicts[0][1] in ("not_applied", "unknown")
    assert verdicts[1][1] == "partial"
    assert verdicts[2][1] in ("applied", "unknown")


def test_a_check_constraint_postgres_prints_as_written_is_compared(pg_cluster):
    prior = 'CREATE TABLE "Fee" ("id" SERIAL NOT NULL, "amount" INTEGER NOT NULL, CONSTRAINT "Fee_amount_check" CHECK ("amount" > 1));\n'
    migration = ('ALTER TABLE "Fee" DROP CONSTRAINT "Fee_amount_check";\n'
                 'ALTER TABLE "Fee" ADD CONSTRAINT "Fee_amount_check" CHECK ("amount" > 0);\n')
    verdicts = prefix_verdicts(pg_cluster, prior, migration)
    assert [v[1] for v in verdicts] == ["unknown", "partial", "applied"]


def test_create_extension_if_not_exists_committed_alone_never_reads_not_applied(pg_cluster):
    migration = ('CREATE EXTENSION IF NOT EXISTS "pgcrypto";\n'
                 'ALTER TABLE "User" ADD COLUMN "token" TEXT NOT NULL DEFAULT encode(gen_random_bytes(8), \'hex\');\n')
    verdicts = prefix_verdicts(pg_cluster, ROLE_PRIOR, migration)
    assert_exact_ends(verdicts)
    # Only the extension ran: it looks the same as one that was there before, so it cannot be told.
    assert verdicts[1][1] == "unknown"
    # Made by hand before the migration: the untouched state is honestly unknown, never applied.
    assert prefix_verdicts(pg_cluster, ROLE_PRIOR + 'CREATE EXTENSION "pgcrypto";\n', migration)[0][1] == "unknown"


def test_every_prefix_of_every_corpus_migration_probes_only(pg_cluster):
    """The corpus of test_evidence.py, each migration on top of the ones before it, at every prefix."""
    from tests.harness.scenario import CORPUS
    names = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
    # What the probes cannot see decides these ends, so unknown is the right answer without a replay: a leading
    # DO block; data only; a last SET DEFAULT 'STAFF' after the label was renamed to STAFF (an old default
    # 'TEACHER' would read 'STAFF' too); a file ending in DROP INDEX IF EXISTS and CREATE EXTENSION IF NOT EXISTS.
    opaque = {"20240301000000_grading_do_block": {"none"}, "20240501000000_data_only": {"none", "all"},
              "20240215000000_enum_values": {"all"}, "20240515000000_add_then_drop": {"all"}}
    states, unknown, wrong = 0, 0, []
    for position, name in enumerate(names):
        prior = "".join((CORPUS / n / "migration.sql").read_text() for n in names[:position])
        for ran, verdict, reason, state in prefix_verdicts(pg_cluster, prior, (CORPUS / name / "migration.sql").read_text()):
            states += 1
            unknown += verdict == "unknown"
            allowed = EXPECTED[state] + (("unknown",) if state in opaque.get(name, ()) else ())
            if verdict not in allowed:
                wrong.append((name, ran, verdict, reason))
    print("corpus prefixes judged: %d, unknown: %d (%.0f%%)" % (states, unknown, 100.0 * unknown / states))
    assert wrong == [], "\n".join("%s, %d run: %s (%s)" % w for w in wrong)
