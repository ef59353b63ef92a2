"""prisma_migrate_deploy: what it refuses to run, and how it reads the CLI's output."""

from __future__ import annotations

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.modules.prisma_migrate_deploy import (
    check_command, command_words, parse_applied,
)

pytestmark = pytest.mark.unit

APPLIED = """2 migrations found in prisma/migrations

Applying migration `20240115000000_guardians`

The following migration(s) have been applied:

migrations/
  \u2514\u2500 20240115000000_guardians/
    \u2514\u2500 migration.sql
  \u2514\u2500 20240201000000_rename_notice/
    \u2514\u2500 migration.sql

All migrations have been successfully applied.
"""


def test_applied_names_come_from_the_list_after_have_been_applied():
    assert parse_applied(APPLIED) == ["20240115000000_guardians", "20240201000000_rename_notice"]


def test_no_pending_migrations_means_nothing_applied():
    assert parse_applied("2 migrations found in prisma/migrations\n\nNo pending migrations to apply.\n") == []


@pytest.mark.parametrize("argv", [
    ["npx", "prisma", "migrate", "dev"],
    ["npx", "prisma", "db", "push"],
    ["npx", "prisma", "migrate", "reset", "--force"],
    ["npx", "prisma", "db", "push", "--accept-data-loss"],
    ["npx", "prisma", "migrate", "deploy", "--force-reset"],
])
def test_commands_that_can_drop_data_are_refused(argv):
    with pytest.raises(PrismaOpsError):
        check_command(argv)


def test_deploy_and_project_scripts_are_allowed():
    check_command(["npx", "prisma", "migrate", "deploy", "--schema", "src/prisma/db/schema.prisma"])
    check_command(["npm", "run", "prisma:migrate:deploy"])


def test_applied_names_may_hold_spaces_quotes_and_shell_characters():
    name = "20240501000000_it's a weird name; & done"
    output = APPLIED.replace("20240201000000_rename_notice", name)
    assert parse_applied(output) == ["20240115000000_guardians", name]


# Issue 13: destructive commands however they are wrapped.
@pytest.mark.parametrize("argv", [
    ["sh", "-c", "npx prisma migrate reset --force"],
    ["bash", "-lc", "cd /app && npx prisma db push --accept-data-loss"],
    ["dash", "-ec", "npx prisma migrate deploy; npx prisma migrate reset --force"],
    ["env", "X=1", "npx", "prisma", "migrate", "reset"],
    ["env", "-S", "npx prisma migrate reset --force"],
    ["sh", "-c", "exec npx prisma db push"],
    ["pnpm", "exec", "prisma", "migrate", "dev"],
    ["yarn", "prisma", "migrate", "reset", "--force"],
    ["npx", "-c", "prisma migrate reset --force"],
    ["sh", "-c", "bash -c 'npx prisma migrate \"re\"set --force'"],
    ["sh", "-c", "true || npx prisma db push | cat"],
    ["sh", "-c", "npx prisma migrate --schema s.prisma reset"],
    ["sh", "-c", "npx prisma migrate deploy&&npx prisma db push"],
    ["sh", "-c", "npx prisma migrate deploy --schema 'unbalanced && npx prisma db push"],
])
def test_wrapped_destructive_commands_are_refused(argv):
    with pytest.raises(PrismaOpsError, match="refusing"):
        check_command(argv)


@pytest.mark.parametrize("argv", [
    ["sh", "-c", "cd /opt/app && npx prisma migrate deploy --schema 'src/prisma/db/schema.prisma'"],
    ["env", "NODE_ENV=production", "npx", "prisma", "migrate", "deploy"],
    ["bash", "-lc", "npx prisma migrate deploy; echo dev push"],
    ["pnpm", "exec", "prisma", "migrate", "deploy"],
])
def test_wrapped_deploys_are_allowed(argv):
    check_command(argv)


def test_words_of_a_script_keep_separators_apart():
    assert command_words(["sh", "-c", "a b;c&&d | e"]) == ["sh", "-c", "a", "b", ";", "c", "&&", "d", "|", "e"]
