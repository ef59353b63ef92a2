"""What a migration.sql becomes when it is replayed inside the shadow_url database's one rolled-back transaction."""

from __future__ import annotations

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import in_transaction_statements

pytestmark = pytest.mark.unit


def test_the_files_own_begin_and_commit_are_left_out():
    script = 'BEGIN;\nCREATE TYPE "Role_new" AS ENUM (\'A\');\nCOMMIT;\nSTART TRANSACTION;\nDROP TYPE "Old";\nEND;\n'
    assert in_transaction_statements(script) == ['CREATE TYPE "Role_new" AS ENUM (\'A\')', 'DROP TYPE "Old"']


@pytest.mark.parametrize("statement", ["ROLLBACK", "SAVEPOINT a", "ROLLBACK TO SAVEPOINT a", "RELEASE a",
                                       "PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'"])
def test_other_transaction_control_cannot_be_replayed(statement):
    with pytest.raises(PrismaOpsError, match="cannot be replayed inside the scratch transaction"):
        in_transaction_statements('CREATE TABLE "A" ("id" INT);\n%s;\n' % statement)


def test_concurrently_is_dropped_from_index_statements_only():
    script = ('CREATE UNIQUE INDEX CONCURRENTLY "A_x_key" ON "A"("x");\n'
              'drop index concurrently if exists "A_y_idx";\n'
              'REINDEX INDEX CONCURRENTLY "A_x_key";\n'
              'CREATE INDEX "CONCURRENTLY" ON "A"("z");\n')
    assert in_transaction_statements(script) == [
        'CREATE UNIQUE INDEX "A_x_key" ON "A"("x")',
        'drop index if exists "A_y_idx"',
        'CREATE INDEX "CONCURRENTLY" ON "A"("z")',
    ]


def test_a_comment_between_the_words_is_refused_rather_than_guessed():
    with pytest.raises(PrismaOpsError, match="runs CONCURRENTLY"):
        in_transaction_statements('CREATE INDEX /* online */ CONCURRENTLY "A_x_idx" ON "A"("x");')
