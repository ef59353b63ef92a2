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


# One node process prints its own version and the project's prisma package version (from the deploy's directory).
VERSIONS_SCRIPT = ("let p = '-'; try { p = require(require.resolve('prisma/package.json', {paths: [process.cwd()]}))"
                   ".version } catch (e) {} process.stdout.write(process.version + ' ' + p)")
# What each Prisma major needs of Node (its package.json engines): 7.x ^20.19 || ^22.12 || >=24, 6.x >=18.18.
NODE_NEEDS = {7: (((20, 19), (21, 0)), ((22, 12), (23, 0)), ((24, 0), None)), 6: (((18, 18), None),)}
NODE_NEEDS_TEXT = {7: "^20.19 || ^22.12 || >=24", 6: ">=18.18"}


def _version(text: str) -> tuple | None:
    found = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", (text or "").strip())
    return tuple(int(x or 0) for x in found.groups()) if found else None


def parse_versions(output: str) -> dict:
    """{node, prisma} as printed by VERSIONS_SCRIPT (None where unknown)."""
    parts = (output or "").strip().split()
    node = parts[0] if parts and _version(parts[0]) else None
    prisma = parts[1] if len(parts) > 1 and _version(parts[1]) else None
    return {"node": node, "prisma": prisma}


def node_problem(node: str | None, prisma: str | None) -> str | None:
    """Why this Node cannot run this Prisma (what to install), or None (fine, or not known)."""
    node_v, prisma_v = _version(node), _version(prisma)
    if node_v is None or prisma_v is None:
        return None
    major = min(max(prisma_v[0], 6), 7)
    if prisma_v[0] < 6:
        return None
    for low, high in NODE_NEEDS[major]:
        if node_v[:2] >= low and (high is None or node_v[:2] < high):
            return None
    return ("Node %s cannot run Prisma %s, which needs Node %s: install a Node that does on this host (or in the app's "
            "container)" % (node, prisma, NODE_NEEDS_TEXT[major]))
