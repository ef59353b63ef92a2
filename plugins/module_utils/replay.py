# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shadow replay: migrations 1..N-1 and N replayed in a scratch database, compared with the live schema."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace

from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import connect, parse_database_url, scrub
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import compare_snapshots, quote_ident, take_snapshot
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import SqlParseError, parse_script

DIFFERENCE_LIMIT = 25
SHADOW_PREFIX = "prisma_ops_shadow_"

# ---------------------------------------------------------------- shadow replay


def apply_script(conn, script: str) -> None:
    """Run a migration.sql as the native engine does: one simple-query call, one implicit transaction.

    A script with CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction block, so it is sent
    statement by statement (what Prisma >= 7.4 does).
    """
    parsed = parse_script(script)
    with conn.cursor() as cur:
        if parsed.has_concurrently:
            for statement in parsed.statements:
                cur.execute(statement.sql)
        elif script.strip():
            cur.execute(script)  # no parameters: psycopg2 sends the text as is (PQexec)


def _server_fingerprint(conn) -> tuple:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_postmaster_start_time(), current_database(), current_setting('port')")
        return cur.fetchone()


# Every user object a database can hold, outside the system schemas: the shadow_url database must hold none.
_USER_OBJECTS = """
SELECT 'schema ' || nspname FROM pg_namespace
 WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\\_%'
UNION ALL
SELECT 'relation ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('information_schema') AND n.nspname NOT LIKE 'pg\\_%'
UNION ALL
SELECT 'type ' || n.nspname || '.' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('information_schema') AND n.nspname NOT LIKE 'pg\\_%' AND t.typrelid = 0 AND t.typelem = 0
UNION ALL
SELECT 'routine ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('information_schema') AND n.nspname NOT LIKE 'pg\\_%'
UNION ALL
SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
ORDER BY 1 LIMIT 6
"""
# Hosts that share one shadow_url replay one after the other (a transaction-scoped lock: released by the rollback).
SHADOW_URL_LOCK = "prisma_ops.migrate shadow_url replay"
SHADOW_URL_LOCK_WAIT = "900s"  # a safety net far above one replay; the wait ends when the other replay rolls back
_LEADING_CONCURRENTLY = re.compile(r"^(\s*(?:CREATE\s+(?:UNIQUE\s+)?|DROP\s+)INDEX\s+)CONCURRENTLY\b\s*", re.I)


def user_objects(conn) -> list:
    """Up to six user objects of the connected database (empty: a database fit to be a scratch database)."""
    with conn.cursor() as cur:
        cur.execute(_USER_OBJECTS)
        return [row[0] for row in cur.fetchall()]


def in_transaction_statements(script: str) -> list:
    """The statements of a migration.sql as they replay inside one transaction that is always rolled back.

    The file's own BEGIN/COMMIT are left out (a COMMIT would end the replay's transaction and keep its work);
    CONCURRENTLY is dropped from index statements (same index, and it cannot run in a transaction block).
    Anything else that cannot run in a transaction block is refused: the replay then cannot tell.
    """
    out = []
    for statement in parse_script(script).statements:
        kind = statement.node.get("kind", "") if statement.node_type == "TransactionStmt" else ""
        if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START", "TRANS_STMT_COMMIT"):
            continue
        if statement.node_type == "TransactionStmt":
            raise PrismaOpsError("statement %d (%s) cannot be replayed inside the scratch transaction"
                                 % (statement.index, statement.excerpt))
        sql = statement.sql
        if statement.concurrent:
            if statement.node_type == "ReindexStmt":
                continue  # rebuilds an index: no schema effect to replay
            sql, count = _LEADING_CONCURRENTLY.subn(r"\1", sql)
            if count != 1:
                raise PrismaOpsError("statement %d (%s) runs CONCURRENTLY and cannot be replayed inside the scratch "
                                     "transaction" % (statement.index, statement.excerpt))
        if sql.strip():
            out.append(sql)
    return out


@dataclass
class ShadowResult:
    status: str                       # matches_after | matches_before | no_schema_change | differs | unavailable | error
    message: str
    database: str | None = None       # "temporary", "shadow_url" or "controller"
    before: dict | None = field(default=None, repr=False)
    after: dict | None = field(default=None, repr=False)
    differences_from_before: list = field(default_factory=list)
    differences_from_after: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"status": self.status, "message": self.message, "database": self.database,
                "differences_from_before": self.differences_from_before,
                "differences_from_after": self.differences_from_after}

    def to_json(self) -> dict:
        """What a cache keeps of a replay: the result and both snapshots (before the live schema is compared)."""
        return {"status": self.status, "message": self.message, "database": self.database,
                "before": self.before, "after": self.after}

    @classmethod
    def from_json(cls, data: dict) -> "ShadowResult":
        return cls(data["status"], data["message"], data.get("database"), before=data.get("before"),
                   after=data.get("after"))


def _run_script(conn, text: str, in_transaction: bool) -> None:
    if not in_transaction:
        apply_script(conn, text)
        return
    with conn.cursor() as cur:
        for sql in in_transaction_statements(text):
            cur.execute(sql)


def _snapshots(conn, scripts: list, schema: str, in_transaction: bool = False, at=None,
               failed_last: bool = False) -> dict:
    """{k: snapshot after migrations 1..k} for each k in `at` (every k from 0 when None), replaying `scripts`
    ([(name, text)]) in order; raise PrismaOpsError naming the migration that failed to replay.

    in_transaction: the connection is in a transaction the caller rolls back (the shadow_url database), so
    each file runs statement by statement inside it (in_transaction_statements). failed_last: the last script is
    the failed migration, named so in the messages.
    """
    missing = missing_extensions(conn, scripts)
    if missing:
        raise ExtensionMissing(missing)
    with conn.cursor() as cur:
        if schema != "public":
            cur.execute("CREATE SCHEMA IF NOT EXISTS %s" % quote_ident(schema))
        cur.execute("SELECT set_config('search_path', %s, %s)", (quote_ident(schema), in_transaction))
    wanted = set(range(len(scripts) + 1)) if at is None else set(at)
    found = {0: take_snapshot(conn)} if 0 in wanted else {}
    for k, (name, text) in enumerate(scripts, 1):
        last = failed_last and k == len(scripts)
        try:
            _run_script(conn, text, in_transaction)
        except SqlParseError as exc:
            raise PrismaOpsError("migration %s cannot be parsed: %s" % (name, exc.msg))
        except PrismaOpsError as exc:
            raise PrismaOpsError(("the failed migration cannot be replayed: %s" if last else
                                  "migration " + name + " cannot be replayed: %s") % exc.msg)
        except Exception as exc:  # psycopg2 errors of every class end the replay the same way
            raise PrismaOpsError(("the failed migration itself fails in the shadow database too: %s" if last else
                                  "migration " + name + " failed in the shadow database: %s") % _first_line(exc))
        if k in wanted:
            found[k] = take_snapshot(conn)
    return found


def _replay(conn, prior: list, script: str, schema: str, in_transaction: bool = False) -> tuple:
    """(before, after): the snapshots after migrations 1..N-1 and 1..N."""
    found = _snapshots(conn, prior + [("the failed migration", script)], schema, in_transaction,
                       at=(len(prior), len(prior) + 1), failed_last=True)
    return found[len(prior)], found[len(prior) + 1]


class ExtensionMissing(PrismaOpsError):
    """The scratch server cannot install an extension the migrations create: no replay there (not a failed one)."""

    def __init__(self, missing: list):
        needs = "; ".join("%s (%s, statement %d)" % (ext, name, index) for ext, name, index in missing)
        super().__init__("the scratch server has no extension %s: install its package there (the same major version as "
                         "the host's) for a replay; until then the statement%s that create%s it, and whatever uses it, "
                         "cannot be told by a replay and the probes decide alone"
                         % (needs, "s" if len(missing) > 1 else "", "" if len(missing) > 1 else "s"),
                         code="extension_missing")


def missing_extensions(conn, scripts: list) -> list:
    """[(extension, migration, statement index)] for each CREATE EXTENSION whose extension the server cannot install
    (not in pg_available_extensions). A script that does not parse is left to the replay's own error."""
    wanted = []
    for name, text in scripts:
        try:
            statements = parse_script(text).statements
        except SqlParseError:
            continue
        for statement in statements:
            if statement.node_type == "CreateExtensionStmt" and statement.node.get("extname"):
                wanted.append((statement.node["extname"], name, statement.index))
    if not wanted:
        return []
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM pg_available_extensions WHERE name = ANY(%s)", (sorted({w[0] for w in wanted}),))
        available = {row[0] for row in cur.fetchall()}
    return [w for w in wanted if w[0] not in available]


def replay_in(conn, prior: list, script: str, schema: str, where: str) -> ShadowResult:
    """The replay in a fresh database that the caller made and drops (the controller's scratch server)."""
    try:
        before, after = _replay(conn, prior, script, schema)
    except ExtensionMissing as exc:
        return ShadowResult("unavailable", exc.msg, where)
    except PrismaOpsError as exc:
        return ShadowResult("error", exc.msg, where)
    return _shadow_compare(before, after, where)


def _first_line(exc) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__


def shadow_replay(live_conn, spec, prior: list, script: str, shadow_url: str | None = None) -> ShadowResult:
    """Replay migrations 1..N-1 and N in a scratch database; always removes what it created."""
    def work(conn, in_transaction: bool) -> tuple:
        return _replay(conn, prior, script, spec.schema, in_transaction)

    outcome, where = in_scratch(live_conn, spec, shadow_url, work)
    if isinstance(outcome, ShadowResult):
        return outcome
    return _shadow_compare(outcome[0], outcome[1], where)


def in_scratch(live_conn, spec, shadow_url: str | None, work) -> tuple:
    """(work(conn, in_transaction), where) run in a scratch database of the host's server: the shadow_url database
    (in ONE transaction that is always rolled back) or a temporary database (CREATEDB), always removed. When none
    can be used or the work fails: (ShadowResult unavailable|error, where)."""
    secrets_list = list(spec.secrets)
    if shadow_url:
        return _in_shadow_url(live_conn, spec, shadow_url, secrets_list, work), "shadow_url"
    with live_conn.cursor() as cur:
        cur.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cur.fetchone()
    if not row or not row[0]:
        return ShadowResult("unavailable", "no shadow_url, and user %r may not create a temporary database (no CREATEDB)"
                            % spec.user), None
    name = SHADOW_PREFIX + secrets.token_hex(6)
    admin = connect(spec, application_name="prisma_ops.migrate/evidence-shadow")
    created = False
    try:
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE %s TEMPLATE template0" % quote_ident(name))
        created = True
        conn = connect(replace(spec, dbname=name), application_name="prisma_ops.migrate/evidence-shadow")
        try:
            return work(conn, False), "temporary"
        except ExtensionMissing as exc:
            return ShadowResult("unavailable", exc.msg, "temporary"), "temporary"
        except PrismaOpsError as exc:
            return ShadowResult("error", scrub(exc.msg, secrets_list), "temporary"), "temporary"
        finally:
            conn.close()
    except PrismaOpsError:
        raise
    except Exception as exc:  # CREATE DATABASE refused (quota, template busy...): evidence goes on without it
        return ShadowResult("unavailable", "cannot create a temporary database: %s"
                            % scrub(_first_line(exc), secrets_list)), None
    finally:
        try:
            if created:
                _drop_database(admin, name)
        finally:
            admin.close()


def _in_shadow_url(live_conn, spec, shadow_url: str, secrets_list: list, work):
    """work() in the shadow_url database, in ONE transaction that is always rolled back.

    Nothing is ever dropped or reset there, so a database that is not empty is refused, never cleaned (it may be
    someone's), and check mode writes nothing. Hosts that share the URL wait for each other (SHADOW_URL_LOCK).
    """
    shadow_spec = parse_database_url(shadow_url, "shadow_url")
    secrets_list += shadow_spec.secrets
    shadow_spec.schema = spec.schema
    conn = connect(shadow_spec, application_name="prisma_ops.migrate/evidence-shadow")
    try:
        if _server_fingerprint(conn) == _server_fingerprint(live_conn):
            raise PrismaOpsError("shadow_url points at the database being inspected (%s): give a separate, empty "
                                 "database" % spec.target)
        conn.autocommit = False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('lock_timeout', %s, true)", (SHADOW_URL_LOCK_WAIT,))
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SHADOW_URL_LOCK,))
                cur.execute("SELECT set_config('lock_timeout', '0', true)")
            found = user_objects(conn)
            if found:
                raise PrismaOpsError("the shadow_url database %s is not empty (%s%s): the replay needs a database "
                                     "that holds nothing, and never removes anything from one"
                                     % (shadow_spec.target, ", ".join(found[:5]), ", ..." if len(found) > 5 else ""))
            try:
                return work(conn, True)
            except ExtensionMissing as exc:
                return ShadowResult("unavailable", exc.msg, "shadow_url")
            except PrismaOpsError as exc:
                return ShadowResult("error", scrub(exc.msg, secrets_list), "shadow_url")
        except PrismaOpsError:
            raise
        except Exception as exc:  # the lock wait ran out, or the connection broke: evidence goes on without it
            return ShadowResult("unavailable", "the shadow_url database could not be used: %s"
                                % scrub(_first_line(exc), secrets_list), "shadow_url")
        finally:
            if not conn.closed:
                conn.rollback()  # everything the replay did, and the lock, go with it
    finally:
        conn.close()


def prefix_snapshots(live_conn, spec, scripts: list, shadow_url: str | None = None) -> tuple:
    """(snapshots after 0..N migrations, where) replayed in one pass in a scratch database of the host's server,
    or (ShadowResult unavailable|error, where)."""
    def work(conn, in_transaction: bool) -> list:
        found = _snapshots(conn, scripts, spec.schema, in_transaction)
        return [found[k] for k in range(len(scripts) + 1)]
    return in_scratch(live_conn, spec, shadow_url, work)


def replay_prefixes_in(conn, scripts: list, schema: str) -> list:
    """The snapshots after 0..N migrations, in a fresh database the caller made and drops (the controller's)."""
    found = _snapshots(conn, scripts, schema)
    return [found[k] for k in range(len(scripts) + 1)]


DROP_ATTEMPTS = 5


def _drop_database(admin, name: str) -> None:
    """Drop a temporary database of ours, however busy the server is.

    A plain DROP first: PostgreSQL itself ends an autovacuum worker in it and waits (up to 5 s) for our own
    replay session to finish exiting. WITH (FORCE) only when that was not enough: for a role that is not superuser
    it fails when an autovacuum worker is there ("must be a member of the role whose process is being terminated").
    """
    quoted = quote_ident(name)
    with admin.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int")
        can_force = cur.fetchone()[0] >= 130000  # FORCE: PostgreSQL 13 and later
        for attempt in range(1, DROP_ATTEMPTS + 1):
            try:
                cur.execute("DROP DATABASE IF EXISTS %s" % quoted)
                return
            except Exception as exc:  # psycopg2 errors: only "in use" (55006) is worth another try
                if getattr(exc, "pgcode", None) != "55006" or attempt == DROP_ATTEMPTS:
                    raise
            if can_force:
                try:
                    cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % quoted)
                    return
                except Exception as exc:  # an autovacuum worker we may not end: the plain DROP ends it
                    if getattr(exc, "pgcode", None) not in ("42501", "55006"):
                        raise


def _shadow_compare(before: dict, after: dict, where: str) -> ShadowResult:
    result = ShadowResult("pending", "", where, before=before, after=after)
    if not compare_snapshots(before, after):
        result.status = "no_schema_change"
        result.message = "the migration changes no schema object, so the replay cannot tell"
    return result


def compare_with_live(result: ShadowResult, live: dict) -> ShadowResult:
    if result.before is None or result.status == "no_schema_change":
        return result
    from_before = compare_snapshots(result.before, live)
    from_after = compare_snapshots(result.after, live)
    result.differences_from_before = from_before[:DIFFERENCE_LIMIT]
    result.differences_from_after = from_after[:DIFFERENCE_LIMIT]
    if not from_after:
        result.status, result.message = "matches_after", "the live schema matches the replay of migrations 1..N"
    elif not from_before:
        result.status, result.message = "matches_before", "the live schema matches the replay of migrations 1..N-1"
    else:
        result.status = "differs"
        result.message = ("the live schema matches neither replay: %d difference%s from the state after, %d from the "
                          "state before" % (len(from_after), "s" if len(from_after) != 1 else "", len(from_before),))
    return result
