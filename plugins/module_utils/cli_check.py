# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Before the first write: the project's own Prisma CLI loads its config and schema and touches the same database.

`prisma migrate status` (read-only) runs with the deploy's environment and directory. Prisma 6 and 7 print the
database the CLI is about to use on stdout - `Datasource "db": PostgreSQL database "X", schema "S" at "host:port"`
(with a driver adapter: `using driver adapter "..."` instead of `at`). No such line means the CLI could not load its
config or schema: the deploy would fail the same way, after the collection had written. A line naming another
database, schema or server means the CLI and the modules disagree about where they are.
"""

from __future__ import annotations

import re

from ansible_collections.prisma_ops.migrate.plugins.module_utils.resolve import ANSI_ESCAPE

DATASOURCE = re.compile(r'^Datasource "[^"]*": PostgreSQL database "(?P<database>[^"]*)"'
                        r'(?:, schemas? "(?P<schema>[^"]*)")?(?: at "(?P<at>[^"]*)")?', re.M)


def status_argv(deploy_argv: list, given: list | None = None) -> list | None:
    """The status command: `given`, else the deploy command with its `migrate deploy` turned into `migrate status`
    (same binary, same flags such as --schema or --config). None when the deploy command does not show it (a script)."""
    if given:
        return list(given)
    for i in range(len(deploy_argv) - 1):
        if deploy_argv[i] == "migrate" and deploy_argv[i + 1] == "deploy":
            return list(deploy_argv[:i + 1]) + ["status"] + list(deploy_argv[i + 2:])
    return None


def parse_datasource(output: str) -> dict | None:
    """{database, schema, at} from the CLI's Datasource line (schema and at may be None), or None without one."""
    found = DATASOURCE.search(ANSI_ESCAPE.sub("", output or ""))
    return found.groupdict() if found else None


def mismatches(datasource: dict, database: str, schema: str, host: str | None, port: int | None) -> list:
    """What the CLI names differently from the modules' connection: [(what, the CLI's, the modules')]."""
    found = []
    if datasource["database"] != database:
        found.append(("database", datasource["database"], database))
    if datasource.get("schema") is not None and datasource["schema"].split(", ")[0] != schema:
        found.append(("schema", datasource["schema"], schema))
    at = datasource.get("at")
    if at is not None and host and not host.startswith("/"):
        expected = "%s:%s" % (host, port or 5432)
        if at.lower() != expected.lower():
            found.append(("server", at, expected))
    return found


def first_lines(output: str, count: int = 4) -> str:
    lines = [line.strip() for line in ANSI_ESCAPE.sub("", output or "").splitlines() if line.strip()]
    # The config banner says nothing about the failure.
    lines = [line for line in lines if not line.startswith(("Loaded Prisma config", "Prisma config detected"))]
    return " | ".join(lines[:count]) if lines else "no output"
