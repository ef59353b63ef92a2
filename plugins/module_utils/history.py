# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a database's Prisma migration history stands, as deploy will act on it.

The rules follow prisma-engines (see ../shared/reference/prisma-migrate.md sections 1 and 4):
- deploy is blocked (P3009) while any row has finished_at and rolled_back_at both NULL;
- a local migration is applied again by deploy unless some row of that name has
  rolled_back_at NULL, so a rolled-back migration is re-run (`migrate status` hides that);
- edited migrations and migrations missing on disk are reported, unlike `migrate status`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import (
    LOCKFILE, MigrationsDir, checksum_matches, prisma_sort_key, provider_finding,
)

MIGRATIONS_TABLE = "_prisma_migrations"
# Tables PostGIS creates itself; Prisma's "schema is not empty" check (P3005) ignores them.
POSTGIS_TABLES = ("spatial_ref_sys", "geography_columns", "geometry_columns", "raster_columns", "raster_overviews")
STATES = ("applied", "failed", "rolled_back", "pending", "missing_locally", "modified")
LOG_LIMIT = 4000


@dataclass
class HistoryRow:
    id: str
    checksum: str
    finished_at: object
    migration_name: str
    logs: str | None
    rolled_back_at: object
    started_at: object
    applied_steps_count: int

    @property
    def is_failed(self) -> bool:
        return self.finished_at is None and self.rolled_back_at is None

    @property
    def is_applied(self) -> bool:
        return self.finished_at is not None and self.rolled_back_at is None

    @property
    def counts_for_deploy(self) -> bool:
        """Deploy treats the name as already applied when any row is not rolled back."""
        return self.rolled_back_at is None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_ref(schema: str) -> str:
    return "%s.%s" % (quote_ident(schema), quote_ident(MIGRATIONS_TABLE))


# pg_class.relkind of anything that can be named _prisma_migrations (one namespace for all of them).
RELATION_KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table",
                  "S": "sequence", "i": "index", "I": "partitioned index", "c": "composite type", "t": "TOAST table"}
_READABLE_KINDS = ("r", "p", "v", "m", "f")


def relation_finding(kind: str | None, schema: str) -> str | None:
    """Why a relation named _prisma_migrations that is not a plain table needs a person, or None.

    Prisma lists only relkind 'r' when it looks for its table (flavour/postgres.rs table_names), so
    deploy misses any other relation of that name: it reports P3005 when other tables exist, or tries
    CREATE TABLE and fails because the name is taken (42P07). Nothing here writes into it either.
    """
    if kind is None or kind == "table":
        return None
    return ("%s is a %s, not a table: prisma migrate deploy looks for a plain table, so it would report P3005 or fail "
            "creating one (42P07, the name is taken), and this collection never writes into a %s. Review it: make "
            "it a plain table with Prisma's columns (or drop it if it is not the history)"
            % (table_ref(schema), kind, kind))


def read_history(conn, schema: str) -> dict:
    """Read the database side: schema and table presence, the rows in Prisma's order, baseline need.

    Any relation named _prisma_migrations counts as present (never "missing", never P3005); one that
    is not a plain table is read when it can be and carries `table_finding`.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema,))
        schema_exists = cur.fetchone()[0]
        # relkind 'r' on purpose here: Prisma's P3005 emptiness check counts plain tables only (partitioned tables,
        # views and sequences do not make a schema "not empty"). The history relation itself is found by name below.
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname <> ALL(%s)",
            (schema, list(POSTGIS_TABLES)))
        tables = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s", (schema, MIGRATIONS_TABLE))
        found = cur.fetchone()
        relkind = found[0] if found else None
        kind = RELATION_KINDS.get(relkind, "relation (relkind %r)" % relkind) if relkind else None
        table_exists = relkind is not None
        finding = relation_finding(kind, schema)
        rows = []
        if table_exists:
            if relkind not in _READABLE_KINDS:
                raise PrismaOpsError("cannot read the migration history: %s" % finding, code="history_not_a_table",
                                     table_kind=kind)
            try:
                cur.execute(
                    "SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, "
                    "applied_steps_count FROM %s ORDER BY started_at ASC, id ASC" % table_ref(schema))
            except Exception as exc:  # psycopg2 errors vary by cause; all need the same advice
                code = getattr(exc, "pgcode", None)
                if code == "42501":
                    raise PrismaOpsError("the database user cannot read %s (permission denied): connect as the app's "
                                         "user or GRANT SELECT on it" % table_ref(schema))
                text = str(exc).strip().splitlines()[0]
                if finding:
                    raise PrismaOpsError("cannot read %s (%s): %s" % (table_ref(schema), text, finding),
                                         code="history_not_a_table", table_kind=kind)
                raise PrismaOpsError("cannot read %s: %s" % (table_ref(schema), text))
            rows = [HistoryRow(*r) for r in cur.fetchall()]
    other_tables = [t for t in tables if t != MIGRATIONS_TABLE]
    return {
        "schema_exists": bool(schema_exists),
        "table_exists": table_exists,
        "table_kind": kind,
        "table_finding": finding,
        "rows": rows,
        "user_tables": other_tables,
        # P3005: deploy refuses a schema that has tables but no history table.
        "baseline_needed": (not table_exists) and bool(other_tables),
    }


def require_writable(history: dict, schema: str, state: str) -> None:
    """Refuse, before any write and in check mode alike, what the history cannot take: one rule for every writer."""
    if history["table_finding"]:
        raise PrismaOpsError("nothing was written: %s" % history["table_finding"], code="history_not_a_table",
                             table_kind=history["table_kind"])
    if state == "applied" and not history["schema_exists"]:
        raise PrismaOpsError("schema %r does not exist: create it (or set schema) before baselining; nothing was "
                             "written" % schema, code="no_schema")


_SQLSTATE_PATTERNS = (
    re.compile(r"Database error code:\s*([0-9A-Z]{5})"),
    re.compile(r"SqlState\(E?([0-9A-Z]{5})\)"),
    re.compile(r"code:\s*\"?([0-9A-Z]{5})\"?"),
    re.compile(r"SQLSTATE[ =:\[]*([0-9A-Z]{5})"),
)
_MESSAGE_PATTERNS = (
    re.compile(r"Database error:\s*\n\s*(?:ERROR:\s*)?(.+)"),
    re.compile(r"(?:^|\s)ERROR:\s*(.+)"),
    re.compile(r"db error:\s*(?:ERROR:\s*)?(.+)"),
)


def parse_failure_log(logs: str | None) -> dict | None:
    """The database error in a failed row's logs: SQLSTATE, message, and which engine wrote it."""
    if not logs or not logs.strip():
        return None
    sqlstate = None
    for pattern in _SQLSTATE_PATTERNS:
        match = pattern.search(logs)
        if match:
            sqlstate = match.group(1)
            break
    message = None
    for pattern in _MESSAGE_PATTERNS:
        match = pattern.search(logs)
        if match:
            message = match.group(1).strip()
            break
    if message is None:
        # A driver adapter's mapped error (`No such table: X`, `Foreign key constraint failed: X`) comes on the line
        # after its `external connector error` header, before the engine's span trace (`   0: ...`, `at ...`).
        lines = [line.strip() for line in logs.strip().splitlines() if line.strip()]
        said = [line for line in lines if line != "external connector error"
                and not re.match(r"(?:\d+: |at |with )", line)]
        message = (said[0] if said else lines[0])[:500]
    if "P3018" in logs or "Database error code" in logs or "A migration failed to apply" in logs:
        engine = "native"
    elif "external connector error" in logs:
        engine = "driver_adapter"
    else:
        engine = "unknown"
    name_match = re.search(r"Migration name:\s*(\S+)", logs) or re.search(r'with migration_name="([^"]+)"', logs)
    return {"sqlstate": sqlstate, "message": message, "engine": engine,
            "migration_name": name_match.group(1) if name_match else None}


def _iso(value):
    return value.isoformat() if value is not None else None


def _migration_entry(name: str, rows: list, local, dir_checked: bool) -> dict:
    failed = [r for r in rows if r.is_failed]
    applied = [r for r in rows if r.is_applied]
    has_local = local is not None
    if failed:
        state, row = "failed", failed[-1]
    elif applied:
        row = applied[-1]
        if dir_checked and not has_local:
            state = "missing_locally"
        elif has_local and local.script is not None and not checksum_matches(local.script, row.checksum):
            state = "modified"
        else:
            state = "applied"
    elif rows:
        state, row = "rolled_back", rows[-1]
    else:
        state, row = "pending", None
    will_deploy = has_local and not any(r.counts_for_deploy for r in rows)
    checksum_ok = None
    if row is not None and has_local and local.script is not None:
        checksum_ok = checksum_matches(local.script, row.checksum)
    logs = row.logs if (row is not None and state == "failed") else None
    entry = {
        "name": name,
        "state": state,
        "local": has_local if dir_checked else None,
        "script_present": (local.script is not None) if has_local else None,
        "script_error": local.read_error if has_local else None,
        "in_database": bool(rows),
        "will_deploy": bool(will_deploy),
        "attempts": len(rows),
        "started_at": _iso(row.started_at) if row else None,
        "finished_at": _iso(row.finished_at) if row else None,
        "rolled_back_at": _iso(row.rolled_back_at) if row else None,
        "applied_steps_count": row.applied_steps_count if row else None,
        "checksum_ok": checksum_ok,
        # Checksums only where they are not known to match: that is when an operator compares them,
        # and 5,000 identical pairs would only weigh on every result.
        "checksum_database": row.checksum if (row and checksum_ok is not True) else None,
        "checksum_local": local.checksum if (has_local and checksum_ok is not True) else None,
        "logs": logs[:LOG_LIMIT] if logs else logs,
        "error": parse_failure_log(logs) if state == "failed" else None,
    }
    return entry


def build_report(history: dict, local: MigrationsDir | None) -> dict:
    """Combine the database side (read_history) with the local folder into the module's result."""
    rows = history["rows"]
    by_name: dict = {}
    for row in rows:
        by_name.setdefault(row.migration_name, []).append(row)
    dir_checked = local is not None
    local_by_name = {m.name: m for m in local.migrations} if local else {}
    names = set(by_name) | set(local_by_name)
    ordered = sorted(names, key=prisma_sort_key)
    migrations = [_migration_entry(n, by_name.get(n, []), local_by_name.get(n), dir_checked) for n in ordered]

    def names_in(state: str) -> list:
        return [m["name"] for m in migrations if m["state"] == state]

    # Deploy applies in the local folder's order (Prisma's localeCompare order).
    local_order = local.names if local else []
    entries = {m["name"]: m for m in migrations}
    will_deploy = [n for n in local_order if entries[n]["will_deploy"]]
    failed = names_in("failed")
    finding = history.get("table_finding")
    provider = provider_finding(local.provider, local.lockfile_present, local.path) if local else None
    # Deploy cannot use a history relation that is not a plain table (see relation_finding), nor a folder whose
    # lockfile names another provider (P3019, before it reads any row).
    deploy_blocked = bool(failed) or bool(finding) or bool(provider)
    result = {
        "schema_exists": history["schema_exists"],
        "table_exists": history["table_exists"],
        "table_kind": history.get("table_kind"),
        "table_finding": finding,
        "provider_finding": provider,
        "baseline_needed": history["baseline_needed"],
        "deploy_blocked": deploy_blocked,
        "migrations": migrations,
        # Not "failed": Ansible reads a truthy "failed" key in any result as a task failure.
        "failed_migrations": failed,
        "pending": names_in("pending"),
        "rolled_back": names_in("rolled_back"),
        "missing_locally": names_in("missing_locally"),
        "modified": names_in("modified"),
        "will_deploy": will_deploy,
        "failures": [{"name": m["name"], "started_at": m["started_at"], "attempts": m["attempts"], "error": m["error"]}
                     for m in migrations if m["state"] == "failed"],
        "missing_scripts": [m["name"] for m in migrations if m["will_deploy"] and m["script_present"] is False],
    }
    counts = {state: len(names_in(state)) for state in STATES}
    counts["total"] = len(migrations)
    counts["will_deploy"] = len(will_deploy)
    counts["rows"] = len(rows)
    result["counts"] = counts
    result["in_sync"] = bool(
        history["table_exists"] and not deploy_blocked and not will_deploy and not result["missing_locally"]
        and not result["modified"] and not history["baseline_needed"])
    result["summary"] = summarize(result, dir_checked)
    return result


def summarize(result: dict, dir_checked: bool) -> str:
    """One line an operator can read at 3 a.m."""
    parts = []
    provider = result.get("provider_finding")
    if provider:
        parts.append("deploy blocked (P3019): %s names %s, not postgresql (a history written for another database: "
                     "make a PostgreSQL baseline, never db push)" % (
                         LOCKFILE, "no provider" if provider["lock_provider"] is None
                         else "provider %s" % json.dumps(provider["lock_provider"])))
    if result.get("table_finding"):
        parts.append(result["table_finding"])
    if result["failed_migrations"]:
        parts.append("deploy blocked (P3009) by failed migration%s %s" % (
            "s" if len(result["failed_migrations"]) > 1 else "", ", ".join(result["failed_migrations"])))
    if result["baseline_needed"]:
        parts.append("baseline needed (P3005): the schema has tables but no _prisma_migrations table")
    elif not result["table_exists"]:
        parts.append("no _prisma_migrations table (not managed by Prisma Migrate yet)")
    if result["will_deploy"]:
        rerun = [n for n in result["will_deploy"] if n in result["rolled_back"]]
        text = "%d migration%s to deploy" % (len(result["will_deploy"]), "s" if len(result["will_deploy"]) != 1 else "")
        if rerun:
            text += " (%d rolled back, will re-run: %s)" % (len(rerun), ", ".join(rerun))
        parts.append(text)
    if result["modified"]:
        parts.append("edited after apply: %s" % ", ".join(result["modified"]))
    if result["missing_locally"]:
        parts.append("in the database but not on disk: %s" % ", ".join(result["missing_locally"]))
    if result["missing_scripts"]:
        parts.append("no migration.sql (deploy would fail with P3015): %s" % ", ".join(result["missing_scripts"]))
    if not parts:
        applied = result["counts"]["applied"]
        parts.append("in sync: %d migration%s applied" % (applied, "s" if applied != 1 else ""))
        if not dir_checked:
            parts.append("database side only (no migrations_dir given)")
    return "; ".join(parts)
