"""cli_check.py: the status command derived from the deploy command, and the CLI's Datasource line read."""

from __future__ import annotations

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.cli_check import (
    first_lines, mismatches, parse_datasource, status_argv,
)

pytestmark = pytest.mark.unit

NATIVE = ('Prisma schema loaded from prisma/schema.prisma\n'
          'Datasource "db": PostgreSQL database "schooliat", schema "public" at "127.0.0.1:25431"\n')
ADAPTER = 'Datasource "db": PostgreSQL database "db_1", schema "app" using driver adapter "@prisma/adapter-pg"\n'


def test_the_status_command_keeps_the_deploys_binary_and_flags():
    assert status_argv(["npx", "prisma", "migrate", "deploy", "--schema", "db/schema.prisma"]) == \
        ["npx", "prisma", "migrate", "status", "--schema", "db/schema.prisma"]
    assert status_argv(["npm", "run", "prisma:migrate:deploy"]) is None
    assert status_argv(["npm", "run", "x"], ["npm", "run", "prisma:migrate:status"]) == ["npm", "run", "prisma:migrate:status"]


def test_the_datasource_line_of_a_native_engine_and_of_a_driver_adapter():
    assert parse_datasource("\x1b[1m" + NATIVE) == {"database": "schooliat", "schema": "public", "at": "127.0.0.1:25431"}
    assert parse_datasource(ADAPTER) == {"database": "db_1", "schema": "app", "at": None}
    assert parse_datasource("Error: Could not load `--schema` from provided path `x`: file or directory not found") is None


def test_mismatches_name_each_difference():
    native = parse_datasource(NATIVE)
    assert mismatches(native, "schooliat", "public", "127.0.0.1", 25431) == []
    assert mismatches(native, "other", "app", "db.internal", 5432) == [
        ("database", "schooliat", "other"), ("schema", "public", "app"), ("server", "127.0.0.1:25431", "db.internal:5432")]
    assert mismatches(parse_datasource(ADAPTER), "db_1", "app", "127.0.0.1", 5432) == []  # no server to compare
    assert mismatches(native, "schooliat", "public", "/var/run/postgresql", None) == []  # a socket: not compared


def test_first_lines_drop_the_config_banner():
    assert first_lines("Loaded Prisma config from prisma.config.ts.\n\nPrisma config detected, skipping environment "
                       "variable loading.\nError: Could not load `--schema`\n") == "Error: Could not load `--schema`"


def test_node_versions_prisma_needs():
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.cli_check import node_problem, parse_versions
    assert parse_versions("v20.20.2 6.19.3") == {"node": "v20.20.2", "prisma": "6.19.3"}
    assert parse_versions("v20.20.2 -") == {"node": "v20.20.2", "prisma": None}
    assert parse_versions("") == {"node": None, "prisma": None}
    for node in ("v20.19.0", "v22.12.0", "v24.1.0", "v25.0.0"):
        assert node_problem(node, "7.10.1") is None, node
    for node in ("v20.18.3", "v21.7.0", "v22.11.0", "v23.5.0", "v18.20.0"):
        assert "needs Node ^20.19 || ^22.12 || >=24" in node_problem(node, "7.10.1"), node
    assert node_problem("v18.18.0", "6.19.3") is None and "needs Node >=18.18" in node_problem("v18.17.1", "6.19.3")
    assert node_problem(None, "7.10.1") is None and node_problem("v16.0.0", None) is None
