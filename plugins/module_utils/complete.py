# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finish a partially applied Prisma migration: run only its missing statements, then resolve it applied.

One named failed migration at a time (never a blanket), in ONE transaction on a session holding
Prisma's advisory lock 72707369:

1. take the lock (resolve.acquire_prisma_lock: bounded, nothing left queued), BEGIN;
2. re-read the rows and re-plan `resolve --applied` (resolve.plan_resolution);
3. re-judge every statement of migration.sql against the live catalogs (probes.judge_statements,
   the same probes prisma_migration_info uses): each must be present (skipped) or absent and
   runnable in a transaction (run); anything that cannot be told refuses the whole migration;
4. run the absent statements in file order, take a new snapshot in the same transaction and
   re-judge: every effect must now be there;
5. write the rows `prisma migrate resolve --applied` writes (resolve.statements_for, the one writer);
6. COMMIT, then unlock. Any failure before the commit rolls back schema and rows alike.

PostgreSQL runs DDL transactionally, so the completion is all-or-nothing. A few statements cannot
run inside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM, ALTER TYPE ... ADD VALUE before
PostgreSQL 12, ...): when one of them is missing the migration is refused, because running it outside
the transaction would leave a half-completed schema behind if anything after it failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError, sqlstate_advice
from ansible_collections.prisma_ops.migrate.plugins.module_utils.effects import build_model
from ansible_collections.prisma_ops.migrate.plugins.module_utils.probes import judge_statements
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import quote_ident, read_history, require_writable
from ansible_collections.prisma_ops.migrate.plugins.module_utils.resolve import (
    AT_COMMIT, BEFORE_COMMIT, CHECK_MODE_ID, COMMITTED, acquire_prisma_lock, plan_resolution, release_prisma_lock,
    render_statement, statements_for, transaction_failure,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import take_snapshot
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import SqlParseError, parse_script

# Statement kinds the completion does not run: its own transaction replaces the script's.
TRANSACTION_CONTROL = frozenset(("begin", "commit", "rollback", "savepoint", "release", "prepare_transaction"))
# Harmless to run again, and later statements may depend on them (SET search_path, VALIDATE CONSTRAINT).
RERUN_KINDS = frozenset(("set", "validate_constraint"))
# Parse-tree node types PostgreSQL refuses inside a transaction block ("cannot run inside a transaction block").
NON_TRANSACTIONAL_NODES = {
    "VacuumStmt": "VACUUM cannot run inside a transaction block",
    "CreatedbStmt": "CREATE DATABASE cannot run inside a transaction block",
    "DropdbStmt": "DROP DATABASE cannot run inside a transaction block",
    "CreateTableSpaceStmt": "CREATE TABLESPACE cannot run inside a transaction block",
    "DropTableSpaceStmt": "DROP TABLESPACE cannot run inside a transaction block",
    "AlterSystemStmt": "ALTER SYSTEM cannot run inside a transaction block",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION cannot run inside a transaction block",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION cannot run inside a transaction block",
}


@dataclass
class StatementStep:
    """What the completion does with one statement of migration.sql."""

    index: int
    kind: str
    target: str | None
    excerpt: str
    action: str            # run | skip_present | skip_control
    why: str
    sql: str = field(repr=False, default="")
    checked: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"index": self.index, "kind": self.kind, "object": self.target, "excerpt": self.excerpt,
                "action": self.action, "why": self.why, "checked": list(self.checked)}


@dataclass
class CompletionPlan:
    name: str
    outcome: str                      # changed | unchanged
    reason: str
    steps: list = field(default_factory=list)
    resolution: object = None         # resolve.NamePlan for state=applied

    @property
    def to_run(self) -> list:
        return [s for s in self.steps if s.action == "run"]

    @property
    def present(self) -> list:
        return [s for s in self.steps if s.action == "skip_present"]


def non_transactional_reason(statement, server_version_num: int) -> str | None:
    """Why PostgreSQL would refuse this statement inside a transaction block, or None."""
    if statement.concurrent:
        return "%s CONCURRENTLY cannot run inside a transaction block" % statement.kind.replace("_", " ").upper()
    if statement.node_type == "VacuumStmt" and not statement.node.get("is_vacuumcmd"):
        return None  # ANALYZE alone runs in a transaction
    if statement.node_type in NON_TRANSACTIONAL_NODES:
        return NON_TRANSACTIONAL_NODES[statement.node_type]
    if statement.node_type == "ReindexStmt" and statement.node.get("kind") in ("REINDEX_OBJECT_SYSTEM",
                                                                               "REINDEX_OBJECT_DATABASE"):
        return "REINDEX SYSTEM / DATABASE cannot run inside a transaction block"
    if statement.node_type == "AlterEnumStmt" and not statement.node.get("oldVal") and server_version_num < 120000:
        return "ALTER TYPE ... ADD VALUE cannot run inside a transaction block before PostgreSQL 12"
    return None


def _conditional_statements(statements: list, schema: str) -> set:
    """Statements whose every effect is conditional (IF NOT EXISTS, IF EXISTS, OR REPLACE): safe to run again.

    The probes cannot tell whether such a statement ran (it may have found its object there), but
    running it again leaves exactly the state the script means, so the completion runs it.
    """
    model, unchecked = build_model(statements, schema)
    by_stmt: dict = {}
    for effect in model.effects:
        by_stmt.setdefault(effect.stmt, []).append(effect)
    return {index for index, effects in by_stmt.items()
            if index not in unchecked and effects and all(e.conditional for e in effects if e.mode != "attr")}


def _statement_label(statement) -> str:
    return "statement %d (%s%s: %s)" % (statement.index, statement.kind,
                                        " " + statement.target if statement.target else "", statement.excerpt)


def plan_statements(parsed, schema: str, snapshot: dict, server_version_num: int) -> list:
    """A StatementStep per statement, or PrismaOpsError naming the first statement that blocks the completion."""
    judged = judge_statements(parsed, schema, snapshot, None)
    conditional = _conditional_statements(parsed.statements, schema)
    steps = []
    for statement, entry in zip(parsed.statements, judged):
        status = entry["_status"]
        label = _statement_label(statement)
        if statement.kind in TRANSACTION_CONTROL:
            steps.append(StatementStep(statement.index, statement.kind, statement.target, statement.excerpt,
                                       "skip_control", "transaction control: the completion runs in its own transaction"))
            continue
        if status == "present":
            steps.append(StatementStep(statement.index, statement.kind, statement.target, statement.excerpt,
                                       "skip_present", "its effect is present", checked=entry["checked"]))
            continue
        if status == "absent" or (status == "neutral" and (statement.kind in RERUN_KINDS
                                                           or statement.index in conditional)):
            why = "its effect is absent" if status == "absent" else \
                ("harmless to run again" if statement.kind in RERUN_KINDS else
                 "conditional (IF [NOT] EXISTS / OR REPLACE): running it again leaves the state the script means")
            blocker = non_transactional_reason(statement, server_version_num)
            if blocker:
                raise PrismaOpsError(
                    "%s is missing and %s: completing it here would not be all-or-nothing, so nothing was done. Run "
                    "it by hand (psql), check the result, then run this again (it is then present and skipped)"
                    % (label, blocker), code="not_transactional", statement=statement.as_dict())
            steps.append(StatementStep(statement.index, statement.kind, statement.target, statement.excerpt,
                                       "run", why, statement.sql, entry["checked"]))
            continue
        if status == "mixed":
            problem = "some of its effects are present and some absent, so it can neither be skipped nor run again"
        else:
            problem = "its effect cannot be checked in the catalogs"
        details = "; ".join(entry["checked"])
        raise PrismaOpsError(
            "%s: %s (%s). Nothing was done. Finish or undo that statement by hand, or name the action with "
            "prisma_migrate_resolve after deciding yourself" % (label, problem, details or "no probe"),
            code="cannot_tell", statement=dict(statement.as_dict(), checked=entry["checked"]))
    return steps


def plan_completion(name: str, script: str, rows: list, table_exists: bool, local, schema: str, snapshot: dict,
                    server_version_num: int, new_id=None) -> CompletionPlan:
    """Decide what completing `name` means on these rows and this schema (pure: no database access)."""
    mine = [r for r in rows if r.migration_name == name]
    resolution = plan_resolution([name], "applied", rows, table_exists, local, True,
                                 new_id=new_id or (lambda: CHECK_MODE_ID))[0]
    if resolution.outcome == "unchanged":
        return CompletionPlan(name, "unchanged", resolution.reason, resolution=resolution)
    if resolution.outcome == "refused":
        prefix = "%s: " % resolution.code if resolution.code else ""
        raise PrismaOpsError("nothing was done: %s%s" % (prefix, resolution.reason), code=resolution.code)
    if not any(r.is_failed for r in mine):
        state = "only rolled back (the next prisma migrate deploy runs it again)" if mine else "never recorded"
        raise PrismaOpsError("migration %s is not failed: it is %s. This module completes a failed migration only; "
                             "to baseline use prisma_migrate_resolve state=applied" % (name, state),
                             code="not_failed")
    try:
        parsed = parse_script(script)
    except SqlParseError as exc:
        raise PrismaOpsError("%s; nothing was done" % exc.msg, code="parse_error")
    steps = plan_statements(parsed, schema, snapshot, server_version_num)
    to_run = [s for s in steps if s.action == "run"]
    reason = "run %d missing statement%s (%s), then resolve --applied" % (
        len(to_run), "" if len(to_run) == 1 else "s", ", ".join(str(s.index) for s in to_run) or "none")
    return CompletionPlan(name, "changed", reason, steps, resolution)


def missing_after(parsed, schema: str, snapshot: dict) -> list:
    """Statements whose effect is still absent (or half there) in this snapshot, as labels."""
    judged = judge_statements(parsed, schema, snapshot, None)
    return ["%s: %s" % (_statement_label(statement), "; ".join(entry["checked"]))
            for statement, entry in zip(parsed.statements, judged) if entry["_status"] in ("absent", "mixed")]


def _server_version(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int")
        return cur.fetchone()[0]


def _first_line(exc, secrets) -> str:
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import scrub
    text = scrub(str(getattr(exc, "pgerror", None) or exc) or exc.__class__.__name__, secrets).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def preview(conn, schema: str, name: str, script: str, local) -> dict:
    """Check mode, and the first look of a real run: the plan on the current state, no lock, no write."""
    history = read_history(conn, schema)
    require_writable(history, schema, "applied")  # a view or partitioned _prisma_migrations is never written
    snapshot = take_snapshot(conn)
    plan = plan_completion(name, script, history["rows"], history["table_exists"], local, schema, snapshot,
                           _server_version(conn))
    row_sql = [render_statement(conn, sql, params) for sql, params in statements_for(plan.resolution, schema)] \
        if plan.outcome == "changed" else []
    return {"plan": plan, "rows_before": history["rows"], "row_statements": row_sql}


PROOF_DIFFERENCES_SHOWN = 10


def proof_differences(expected_after: dict, snapshot: dict) -> list:
    """What differs between the replay's "after" (a clean apply of 1..N) and this schema; [] when identical.

    Both sides go through JSON first: the expected one came that way from wherever it was replayed.
    """
    import json
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import compare_snapshots
    return compare_snapshots(json.loads(json.dumps(expected_after)), json.loads(json.dumps(snapshot)))


def execute(conn, schema: str, name: str, script: str, local, lock_timeout: float, secrets=(),
            expected_after: dict | None = None) -> dict:
    """Take the lock, re-plan on the truth under it, run the missing statements, re-probe, resolve, commit.

    expected_after: the schema a clean apply of migrations 1..N leaves (a replay's "after" snapshot). Given, the
    completion commits only when the schema it made is identical to it (the proof); otherwise it rolls back.
    """
    import psycopg2
    ran: list = []
    row_sql: list = []
    current = None
    phase = BEFORE_COMMIT
    try:
        waited = acquire_prisma_lock(conn, lock_timeout)
        conn.autocommit = False
        with conn.cursor() as cur:
            # Bound every lock wait inside the transaction: the app's tables may be busy.
            cur.execute("SET LOCAL lock_timeout = %s", ("%dms" % max(1, int(lock_timeout * 1000)),))
            # The script's unqualified names resolve as Prisma resolves them: in the URL's ?schema=.
            cur.execute("SET LOCAL search_path TO %s" % quote_ident(schema))
        history = read_history(conn, schema)
        require_writable(history, schema, "applied")
        version = _server_version(conn)
        plan = plan_completion(name, script, history["rows"], history["table_exists"], local, schema,
                               take_snapshot(conn), version, new_id=_uuid4)
        if plan.outcome == "unchanged":
            conn.rollback()
            return {"plan": plan, "ran": [], "row_statements": [], "before": history["rows"],
                    "after": history["rows"], "lock_waited": waited}
        with conn.cursor() as cur:
            for step in plan.to_run:
                current = step
                cur.execute(step.sql)  # no parameters: the text goes to the server as written
                ran.append(step)
            current = None
            # Every effect must now be in the catalogs, as this transaction sees them.
            still = missing_after(parse_script(script), schema, take_snapshot(conn))
            if still:
                raise PrismaOpsError(
                    "after running the missing statements, %s still not in place: nothing was committed (schema and "
                    "rows are as before). The script may depend on something this database lacks; inspect it by hand"
                    % "; ".join(still), code="not_present_after")
            if expected_after is not None:
                differences = proof_differences(expected_after, take_snapshot(conn))
                if differences:
                    shown = ["%s %s %s" % (d["kind"], d["name"], d["difference"])
                             for d in differences[:PROOF_DIFFERENCES_SHOWN]]
                    raise PrismaOpsError(
                        "after running the missing statements the schema is not the one a clean apply of migrations "
                        "1..N leaves (%d difference%s: %s%s): nothing was committed, schema and rows are as before. "
                        "Something else changed this schema; compare it by hand before deciding"
                        % (len(differences), "" if len(differences) == 1 else "s", "; ".join(shown),
                           "; ..." if len(differences) > PROOF_DIFFERENCES_SHOWN else ""),
                        code="not_identical", differences=differences[:PROOF_DIFFERENCES_SHOWN * 5])
            for sql, params in statements_for(plan.resolution, schema):
                row_sql.append(render_statement(conn, sql, params))
                cur.execute(sql, params)
                # Same guard as resolve.execute_native: a row edited behind the lock aborts everything.
                if sql.startswith("UPDATE") and cur.rowcount != 1:
                    raise PrismaOpsError("row %s of %s changed while Prisma's lock was held (edited by hand?): nothing "
                                         "was committed; run again" % (params[0], name), code="concurrent_change")
        phase = AT_COMMIT
        conn.commit()
        phase = COMMITTED
        after = read_history(conn, schema)["rows"]
        conn.commit()
        return {"plan": plan, "ran": ran, "row_statements": row_sql, "before": history["rows"], "after": after,
                "lock_waited": waited}
    except psycopg2.Error as exc:
        text = _first_line(exc, secrets)
        if current is not None:
            sqlstate = getattr(exc, "pgcode", None)
            # The server's own reasons (read-only, timeouts, lost sessions...) have advice; a NOT NULL violation here
            # is the migration's own statement meeting existing rows, which the generic advice covers.
            advice = None if sqlstate == "23502" else sqlstate_advice(
                sqlstate, table=current.target, user=getattr(getattr(conn, "info", None), "user", None))
            raise PrismaOpsError(
                "statement %d of %s failed: %s (%s). The transaction was rolled back: the schema and _prisma_migrations "
                "are as before, nothing of this run was committed. %s, then run again"
                % (current.index, name, text, current.excerpt,
                   "Fix this first: %s" % advice if advice else "Fix the cause (for example rows that conflict with it)"),
                code="statement_failed",
                statement=current.as_dict(), sqlstate=getattr(exc, "pgcode", None),
                ran_before_failure=[s.as_dict() for s in ran])
        if phase == BEFORE_COMMIT and getattr(exc, "pgcode", None) == "55P03":
            raise PrismaOpsError("a table or row lock was not granted within lock_timeout (%s s): another session is "
                                 "using it; nothing was committed: %s" % (lock_timeout, text), code="row_lock_timeout")
        # The same outcome and advice as a failed resolve: "safe to run again" only when it is.
        raise transaction_failure(exc, phase, schema, [s.excerpt for s in ran] + row_sql, secrets,
                                  getattr(getattr(conn, "info", None), "user", None), [name])
    finally:
        release_prisma_lock(conn)


def _uuid4() -> str:
    import uuid
    return str(uuid.uuid4())
