# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`prisma migrate resolve`, made idempotent, previewable and race-free.

The decision (plan_resolution) is a pure function of the rows and the local folder, so unit tests
check it without a database. It follows prisma-engines' mark_migration_applied.rs and
mark_migration_rolled_back.rs (../shared/reference/prisma-migrate.md sections 1 and 3) with one
deliberate difference each way:

- applied: a migration that already has an applied row (finished, not rolled back) and no failed
  row is "unchanged", where Prisma fails with P3008. A row that is finished but rolled back, or a
  failed row beside an applied one, is still refused with P3008: the history was edited by hand and
  no write makes it "applied" the way Prisma means it.
- rolled_back: a migration with no failed row but an applied row (e.g. resolved --applied after a
  failure, or re-deployed after a roll-back) is refused with P3012, where Prisma exits 0 and writes
  nothing; saying "rolled back" there would be false. Only rolled-back rows: unchanged, as Prisma.

Writes (execute_native) run in one transaction on a session that holds pg_advisory_lock(72707369),
taken with a bounded pg_try_advisory_lock loop so no backend is ever left queued on the lock.
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from dataclasses import dataclass, field

from ansible_collections.prisma_ops.migrate.plugins.module_utils.advisory_lock import (
    PRISMA_LOCK_KEY, describe_holder, lock_status,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError, sqlstate_advice
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import (
    MIGRATIONS_TABLE, HistoryRow, quote_ident, read_history, require_writable, table_ref,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import (
    MigrationsDir, provider_finding, script_checksum,
)

STATES = ("applied", "rolled_back")
MAX_NAME_LENGTH = 255  # migration_name is VARCHAR(255)
LOCK_POLL_INTERVAL = 0.1
CHECK_MODE_ID = "<new uuid v4>"
CHECK_MODE_NOW = "<now>"

# Prisma's DDL (sql-schema-connector flavour/postgres.rs create_migrations_table), schema-qualified here.
MIGRATIONS_TABLE_DDL = """CREATE TABLE {table} (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)"""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FORBIDDEN = ("'", '"', "`", ";", "/", "\\", "..")


def validate_name(name) -> str:
    """Return the name, or raise PrismaOpsError saying why it cannot be a migration folder name."""
    if not isinstance(name, str):
        raise PrismaOpsError("migration name %r is not a string" % (name,))
    shown = _CONTROL.sub("?", name)[:80]
    if not name or not name.strip():
        raise PrismaOpsError("migration name is empty: give the folder name, e.g. 20250102000000_add_posts")
    if len(name) > MAX_NAME_LENGTH:
        raise PrismaOpsError("migration name %r... is %d characters long; _prisma_migrations.migration_name holds at "
                             "most %d" % (shown, len(name), MAX_NAME_LENGTH))
    if _CONTROL.search(name):
        raise PrismaOpsError("migration name %r contains a newline or another control character" % shown)
    for bad in _FORBIDDEN:
        if bad in name:
            raise PrismaOpsError("migration name %r contains %r: a migration is a folder name such as "
                                 "20250102000000_add_posts, without quotes, semicolons, slashes or '..'" % (shown, bad))
    if name != name.strip():
        raise PrismaOpsError("migration name %r has leading or trailing spaces" % shown)
    if name.startswith("-"):
        # It would be read as an option by the Prisma CLI.
        raise PrismaOpsError("migration name %r starts with '-'" % shown)
    return name


def normalize_names(value) -> list:
    """One name or a list of names, validated, in the order given (duplicates kept: they plan as unchanged)."""
    names = [value] if isinstance(value, str) else list(value or [])
    if not names:
        raise PrismaOpsError("name is empty: give one migration name or a list of them")
    return [validate_name(n) for n in names]


@dataclass
class Action:
    """One write: create the table, roll back one failed row, or insert the applied row."""

    kind: str  # create_table | roll_back_row | insert_applied_row
    row_id: str | None = None
    name: str | None = None
    checksum: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in (("kind", self.kind), ("row_id", self.row_id), ("name", self.name),
                                  ("checksum", self.checksum)) if v is not None}


@dataclass
class NamePlan:
    name: str
    state: str
    outcome: str  # changed | unchanged | refused
    reason: str
    code: str | None = None
    actions: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "outcome": self.outcome, "code": self.code,
                "reason": self.reason, "actions": [a.as_dict() for a in self.actions], "warnings": list(self.warnings)}


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _plan_applied(name: str, rows: list, table_exists: bool, local: MigrationsDir | None, check_local: bool,
                  new_id) -> NamePlan:
    checksum = None
    warnings = []
    if check_local:
        # Prisma checks the local folder first (P3017), before it reads any row.
        found = local.get(name) if local is not None else None
        where = local.path if local is not None else "the migrations folder"
        if found is None:
            return NamePlan(name, "applied", "refused",
                            "migration %s is not a folder in %s: Prisma takes the checksum from its migration.sql; "
                            "check the name (the whole folder name) and migrations_dir" % (name, where), "P3017")
        if found.script is None:
            return NamePlan(name, "applied", "refused",
                            "migration %s has no readable migration.sql in %s (%s): Prisma takes the checksum from "
                            "that file" % (name, where, found.read_error or "unreadable"), "P3017")
        wrong_provider = provider_finding(local.provider, local.lockfile_present, local.path)
        if wrong_provider:
            return NamePlan(name, "applied", "refused", wrong_provider["message"], "P3019")
        checksum = script_checksum(found.script)
    mine = [r for r in rows if r.migration_name == name]
    finished = [r for r in mine if r.finished_at is not None]
    if finished:
        applied = [r for r in mine if r.is_applied]
        failed = [r for r in mine if r.is_failed]
        if applied and not failed:
            row = applied[-1]
            if checksum and row.checksum != checksum:
                warnings.append("the local migration.sql no longer matches the checksum recorded when %s was applied "
                                "(edited after apply?)" % name)
            return NamePlan(name, "applied", "unchanged",
                            "already applied (row %s finished at %s); Prisma would refuse with P3008"
                            % (row.id, _iso(row.finished_at)), None, warnings=warnings)
        if failed:
            why = "it has an applied row and also a failed row"
        else:
            why = "its only finished rows are also rolled back"
        return NamePlan(name, "applied", "refused",
                        "migration %s is already recorded as applied in the database (P3008), yet %s: the history was "
                        "edited by hand; inspect it with prisma_migration_info and fix it deliberately" % (name, why),
                        "P3008")
    actions = []
    if not table_exists:
        actions.append(Action("create_table"))  # Prisma's baseline_initialize: no emptiness check
    for row in mine:
        if row.is_failed:
            actions.append(Action("roll_back_row", row_id=row.id, name=name))
    actions.append(Action("insert_applied_row", row_id=new_id(), name=name, checksum=checksum))
    failed_count = sum(1 for a in actions if a.kind == "roll_back_row")
    if failed_count:
        reason = "failed (%d failed row%s): mark %s rolled back and record the migration as applied" % (
            failed_count, "s" if failed_count > 1 else "", "it" if failed_count == 1 else "them")
    elif mine:
        reason = "only rolled-back rows: record the migration as applied"
    else:
        reason = "never recorded: record it as applied (baseline)"
    if not table_exists:
        reason += "; _prisma_migrations is created first, as Prisma does"
    return NamePlan(name, "applied", "changed", reason, None, actions)


def _plan_rolled_back(name: str, rows: list, table_exists: bool) -> NamePlan:
    if not table_exists:
        return NamePlan(name, "rolled_back", "refused",
                        "there is no _prisma_migrations table, so %s was never applied: nothing to roll back (Prisma "
                        "fails with 'Invariant violation: called markMigrationRolledBack on a database without "
                        "migrations table')" % name, "no_migrations_table")
    mine = [r for r in rows if r.migration_name == name]
    if not mine:
        return NamePlan(name, "rolled_back", "refused",
                        "migration %s cannot be rolled back because it was never applied to the database (no row of "
                        "that name): check the whole folder name, e.g. 20201207184859_initial_migration" % name, "P3011")
    failed = [r for r in mine if r.is_failed]
    if failed:
        return NamePlan(name, "rolled_back", "changed",
                        "failed (%d failed row%s): mark rolled back" % (len(failed), "s" if len(failed) > 1 else ""),
                        None, [Action("roll_back_row", row_id=r.id, name=name) for r in failed])
    applied = [r for r in mine if r.is_applied]
    if applied:
        return NamePlan(name, "rolled_back", "refused",
                        "migration %s cannot be rolled back because it is not in a failed state: it is applied (row %s "
                        "finished at %s)" % (name, applied[-1].id, _iso(applied[-1].finished_at)), "P3012")
    if all(r.finished_at is not None for r in mine):
        # Only finished-and-rolled-back rows (edited by hand): Prisma's P3012 too.
        return NamePlan(name, "rolled_back", "refused",
                        "migration %s cannot be rolled back because it is not in a failed state" % name, "P3012")
    last = max((r for r in mine if r.rolled_back_at is not None), key=lambda r: str(_iso(r.rolled_back_at)))
    return NamePlan(name, "rolled_back", "unchanged", "already rolled back (at %s)" % _iso(last.rolled_back_at))


def _simulate(rows: list, actions: list, now) -> list:
    """The rows after the actions, so the next name in a list is planned on the state it will meet."""
    rows = [copy.copy(r) for r in rows]
    for action in actions:
        if action.kind == "roll_back_row":
            for row in rows:
                if row.id == action.row_id:
                    row.rolled_back_at = now
        elif action.kind == "insert_applied_row":
            rows.append(HistoryRow(id=action.row_id, checksum=action.checksum or "", finished_at=now,
                                   migration_name=action.name, logs="", rolled_back_at=None, started_at=now,
                                   applied_steps_count=0))
    return rows


def plan_resolution(names: list, state: str, rows: list, table_exists: bool, local: MigrationsDir | None = None,
                    check_local: bool = True, new_id=None, now=CHECK_MODE_NOW) -> list:
    """One NamePlan per name, in order; each planned on the rows the earlier ones leave."""
    if state not in STATES:
        raise PrismaOpsError("state must be one of %s, not %r" % (", ".join(STATES), state))
    new_id = new_id or (lambda: str(uuid.uuid4()))
    plans = []
    for name in names:
        if state == "applied":
            plan = _plan_applied(name, rows, table_exists, local, check_local, new_id)
        else:
            plan = _plan_rolled_back(name, rows, table_exists)
        plans.append(plan)
        if plan.outcome == "changed":
            rows = _simulate(rows, plan.actions, now)
            table_exists = True
    return plans


def simulate_plans(rows: list, plans: list, now=CHECK_MODE_NOW) -> list:
    """The rows the plans would leave (check mode's "after")."""
    for plan in plans:
        if plan.outcome == "changed":
            rows = _simulate(rows, plan.actions, now)
    return rows


def refusal_message(plans: list) -> str | None:
    refused = [p for p in plans if p.outcome == "refused"]
    if not refused:
        return None
    text = "; ".join("%s%s" % ("%s: " % p.code if p.code and p.code.startswith("P") else "", p.reason) for p in refused)
    return "nothing was written: %s" % text


# ---------------------------------------------------------------------------------------------------------------------
# Statements

def statements_for(plan: NamePlan, schema: str) -> list:
    """(sql, params) for each action, in Prisma's order: create table, roll back failed rows, insert."""
    table = table_ref(schema)
    out = []
    for action in plan.actions:
        if action.kind == "create_table":
            out.append((MIGRATIONS_TABLE_DDL.format(table=table), None))
        elif action.kind == "roll_back_row":
            # The guard makes a row changed behind our back (without Prisma's lock) abort the transaction.
            out.append(("UPDATE %s SET rolled_back_at = statement_timestamp() WHERE id = %%s "
                        "AND finished_at IS NULL AND rolled_back_at IS NULL" % table, (action.row_id,)))
        elif action.kind == "insert_applied_row":
            # statement_timestamp() is one value per statement: started_at = finished_at, as Prisma writes them.
            out.append(("INSERT INTO %s (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, "
                        "applied_steps_count) VALUES (%%s, %%s, statement_timestamp(), %%s, '', NULL, "
                        "statement_timestamp(), 0)" % table, (action.row_id, action.checksum, action.name)))
    return out


def render_statement(conn, sql: str, params) -> str:
    """The statement as the server receives it (no secret can be in it: ids, names and checksums only)."""
    if params is None:
        return sql
    with conn.cursor() as cur:
        text = cur.mogrify(sql, params)
    return text.decode("utf-8") if isinstance(text, bytes) else text


# ---------------------------------------------------------------------------------------------------------------------
# Rows for results and diffs

def row_dict(row: HistoryRow, logs_limit: int = 500) -> dict:
    logs = row.logs
    if logs and len(logs) > logs_limit:
        logs = logs[:logs_limit] + "..."
    return {"id": row.id, "checksum": row.checksum, "finished_at": _iso(row.finished_at),
            "migration_name": row.migration_name, "logs": logs, "rolled_back_at": _iso(row.rolled_back_at),
            "started_at": _iso(row.started_at), "applied_steps_count": row.applied_steps_count}


def rows_by_name(rows: list, names: list) -> dict:
    return {n: [row_dict(r) for r in rows if r.migration_name == n] for n in dict.fromkeys(names)}


# ---------------------------------------------------------------------------------------------------------------------
# Prisma's advisory lock

def _lock_timeout_error(conn, timeout: float, waited: float, what: str) -> PrismaOpsError:
    try:
        holder, waiters = lock_status(conn)
    except Exception:  # the error is about the lock; a failed look-up must not hide it
        holder, waiters = None, []
    since = ""
    if holder and holder.get("session_started_at"):
        # PostgreSQL does not record when a lock was granted; Prisma takes it right after connecting.
        since = " (holding it since its session started at %s, or later)" % holder["session_started_at"]
    pid = holder["pid"] if holder else None
    advice = ("wait for it to finish and run again, raise lock_timeout, or, if that session is stuck, end it with "
              "SELECT pg_terminate_backend(%s)" % pid) if pid else "run again"
    return PrismaOpsError(
        "%s: Prisma's advisory lock %d is held by %s%s; waited %.1f s of lock_timeout %s s. A prisma migrate deploy or "
        "resolve is probably running: %s. Nothing was written."
        % (what, PRISMA_LOCK_KEY, describe_holder(holder), since, waited, _num(timeout), advice),
        code="lock_timeout", lock_holder=holder, lock_waiters=waiters)


def _num(value: float) -> str:
    return ("%d" % value) if float(value).is_integer() else ("%s" % value)


def acquire_prisma_lock(conn, timeout: float) -> float:
    """Take Prisma's session lock within timeout seconds, never queueing; return the seconds waited.

    pg_try_advisory_lock in a loop rather than pg_advisory_lock + lock_timeout: nothing stays queued
    behind the holder after we give up (Prisma's own client-side timeout leaves its query queued).
    """
    started = time.monotonic()
    deadline = started + max(0.0, timeout)
    with conn.cursor() as cur:
        while True:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (PRISMA_LOCK_KEY,))
            if cur.fetchone()[0]:
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise _lock_timeout_error(conn, timeout, time.monotonic() - started, "cannot take Prisma's lock")
            time.sleep(LOCK_POLL_INTERVAL)


def wait_lock_free(conn, timeout: float) -> float:
    """Wait (without taking it) until nobody holds Prisma's lock; for the cli method, which takes it itself."""
    started = time.monotonic()
    deadline = started + max(0.0, timeout)
    while True:
        if lock_status(conn)[0] is None:
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise _lock_timeout_error(conn, timeout, time.monotonic() - started, "the Prisma CLI was not started")
        time.sleep(LOCK_POLL_INTERVAL)


def release_prisma_lock(conn) -> None:
    """Session locks survive ROLLBACK: unlock explicitly; a dead connection released it already."""
    try:
        if conn.closed:
            return
        if not conn.autocommit:
            conn.rollback()
            conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (PRISMA_LOCK_KEY,))
    except Exception:  # closing the connection (the caller's finally) releases it anyway
        pass


# ---------------------------------------------------------------------------------------------------------------------
# The native method

def _db_error_text(exc, secrets) -> str:
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import scrub
    text = scrub(str(exc) or exc.__class__.__name__, secrets).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


# Where a transaction failed decides what the operator is told: before COMMIT was sent the server rolled it back
# (nothing written, provably); a COMMIT that did not answer may have committed; after COMMIT it is in.
BEFORE_COMMIT, AT_COMMIT, COMMITTED = "before_commit", "at_commit", "committed"
# Failures that end the session or the connection (no SQLSTATE: the socket closed): a COMMIT that meets one may
# have been committed.
_SESSION_ENDED = ("57P01", "57P02", "57P03", "25P03")


def _connection_lost(sqlstate: str | None) -> bool:
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _SESSION_ENDED


def transaction_failure(exc, phase: str, schema: str, executed: list, secrets=(), user: str | None = None,
                        names=()) -> PrismaOpsError:
    """The PrismaOpsError for a database error in a writing transaction: what was committed, then what to do.

    "Running again is safe" is said only when the failure came before COMMIT (the server rolled back) and the
    advice does not first ask for a fix; a COMMIT that got no answer is never called safe.
    """
    text = _db_error_text(exc, secrets)
    sqlstate = getattr(exc, "pgcode", None)
    diag = getattr(exc, "diag", None)
    # No SQLSTATE: the socket closed before libpq read the server's reason (e.g. an idle-in-transaction kill).
    advice = sqlstate_advice(sqlstate or "08000", column=getattr(diag, "column_name", None),
                             table=table_ref(schema), user=quote_ident(user) if user else None)
    details = {"code": "transaction_failed", "sqlstate": sqlstate, "statements_not_committed": executed,
               "phase": phase}
    if phase == BEFORE_COMMIT or (phase == AT_COMMIT and not _connection_lost(sqlstate)):
        outcome = ("the transaction failed before it was committed and PostgreSQL rolled it back: nothing was written "
                   "(%s). Statements sent before the failure: %d." % (text, len(executed)))
        if advice:
            return PrismaOpsError("%s Fix this first, then run again: %s." % (outcome, advice), **details)
        return PrismaOpsError("%s Running again is safe." % outcome, **details)
    if phase == AT_COMMIT:
        details["code"] = "commit_unknown"
        rows = ", ".join(dict.fromkeys(names)) or "the names given"
        return PrismaOpsError(
            "COMMIT got no answer (%s): the change may or may not be committed. Before running again, read "
            "%s with prisma_migration_info and check the rows of %s: the module re-plans on what it finds, so a "
            "second run is idempotent once the server is back%s." % (
                text, table_ref(schema), rows, "; %s" % advice if advice else ""), **details)
    details.pop("statements_not_committed")
    return PrismaOpsError("the change was committed, but reading it back failed (%s): check the rows with "
                          "prisma_migration_info; do not run again blindly%s" % (text, "; %s" % advice if advice else ""),
                          code="read_back", sqlstate=sqlstate, statements=executed)


def execute_native(conn, schema: str, names: list, state: str, local: MigrationsDir | None, check_local: bool,
                   lock_timeout: float, secrets=()) -> dict:
    """Take the lock, re-read, re-plan, write in one transaction, commit, unlock.

    Returns {plans, statements, before, after, lock_waited}. Raises PrismaOpsError with nothing
    committed when a name is refused, the lock cannot be had, or the transaction fails.
    """
    import psycopg2
    phase = BEFORE_COMMIT
    executed = []
    user = getattr(getattr(conn, "info", None), "user", None)
    try:
        waited = acquire_prisma_lock(conn, lock_timeout)
        conn.autocommit = False
        with conn.cursor() as cur:
            # Bound every row/table lock wait inside the transaction too (a session editing the table by hand).
            cur.execute("SET LOCAL lock_timeout = %s", ("%dms" % max(1, int(lock_timeout * 1000)),))
        history = read_history(conn, schema)  # the truth under the lock
        require_writable(history, schema, state)
        plans = plan_resolution(names, state, history["rows"], history["table_exists"], local, check_local)
        refusal = refusal_message(plans)
        if refusal:
            raise PrismaOpsError(refusal, code=next(p.code for p in plans if p.outcome == "refused"),
                                 outcomes=[p.as_dict() for p in plans])
        with conn.cursor() as cur:
            for plan in plans:
                for sql, params in statements_for(plan, schema):
                    executed.append(render_statement(conn, sql, params))
                    cur.execute(sql, params)
                    if sql.startswith("UPDATE") and cur.rowcount != 1:
                        raise PrismaOpsError("row %s of %s changed while Prisma's lock was held (someone edited the "
                                             "table by hand?): nothing was written; run again" % (params[0], plan.name),
                                             code="concurrent_change")
        phase = AT_COMMIT
        conn.commit()
        phase = COMMITTED
        after = read_history(conn, schema)["rows"]
        conn.commit()
        return {"plans": plans, "statements": executed, "before": history["rows"], "after": after,
                "lock_waited": waited, "table_created": any(a.kind == "create_table" for p in plans for a in p.actions)}
    except psycopg2.Error as exc:
        if phase == BEFORE_COMMIT and getattr(exc, "pgcode", None) == "55P03":
            raise PrismaOpsError("a row or table lock on %s was not granted within lock_timeout (%s s): another session "
                                 "is editing it outside Prisma's lock; nothing was written: %s"
                                 % (MIGRATIONS_TABLE, _num(lock_timeout), _db_error_text(exc, secrets)),
                                 code="row_lock_timeout")
        raise transaction_failure(exc, phase, schema, executed, secrets, user, names)
    finally:
        release_prisma_lock(conn)


# ---------------------------------------------------------------------------------------------------------------------
# The cli method

# Prisma's own behaviour (both 6.x and 7.x): the module keeps the URL off the CLI's argv, the CLI does not.
CLI_ENGINE_ARGV_WARNING = ("the Prisma CLI passes the database URL, password included, on its schema engine child's "
                           "command line, readable in this host's process table while the engine runs")

_PCODE = re.compile(r"^Error:\s*(P\d{4})\s*$", re.M)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def parse_cli_error(output: str) -> dict:
    """{code, message} from the Prisma CLI's output: `Error: P3011\\n\\n<message>` or `Error: <text>`."""
    text = ANSI_ESCAPE.sub("", output or "")
    match = _PCODE.search(text)
    if match:
        rest = text[match.end():].strip()
        message = rest.split("\n\n")[0].strip() if rest else ""
        return {"code": match.group(1), "message": message}
    match = re.search(r"^Error:\s*(.+)$", text, re.M)
    if match:
        message = match.group(1).strip()
        if message == "external connector error":
            # A driver adapter's header: what it said comes on the next line (`No such table: X`).
            said = next((line.strip() for line in text[match.end():].splitlines() if line.strip()), "")
            if said and not re.match(r"\d+: ", said):
                message += ": " + said
        return {"code": None, "message": message}
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return {"code": None, "message": lines[-1].strip() if lines else "no output"}


def cli_argv(base: list, state: str, name: str) -> list:
    flag = "--applied" if state == "applied" else "--rolled-back"
    return list(base) + ["migrate", "resolve", flag, name]
