# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prisma Migrate's advisory lock: who holds it, who waits for it.

Prisma takes `SELECT pg_advisory_lock(72707369)` (the one-bigint form: classid 0, objid 72707369,
objsubid 1) on its own session and never unlocks it; closing the connection releases it.
Advisory locks are per database, so only the current database's lock is looked at.
"""

from __future__ import annotations

PRISMA_LOCK_KEY = 72707369

_LOCK_QUERY = """
SELECT l.pid, l.granted, a.application_name, host(a.client_addr), a.usename,
       a.backend_start, a.xact_start, a.query_start, a.state_change, a.state,
       left(a.query, 200), a.wait_event_type, a.wait_event, {waitstart},
       l.pid = pg_backend_pid()
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY l.granted DESC, a.backend_start
"""


def _iso(value):
    return value.isoformat() if value is not None else None


def lock_sessions(conn) -> list:
    """Every session holding or waiting for Prisma's lock in this database (holder first)."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int")
        version = cur.fetchone()[0]
        # pg_locks.waitstart exists from PostgreSQL 14 on.
        query = _LOCK_QUERY.format(waitstart="l.waitstart" if version >= 140000 else "NULL::timestamptz")
        cur.execute(query, (PRISMA_LOCK_KEY,))
        rows = cur.fetchall()
    sessions = []
    for (pid, granted, app, addr, user, backend_start, xact_start, query_start, state_change, state, query,
         wait_type, wait_event, waitstart, is_self) in rows:
        sessions.append({
            "pid": pid,
            "granted": bool(granted),
            "application_name": app,
            "client_addr": addr,
            "user": user,
            "session_started_at": _iso(backend_start),
            "transaction_started_at": _iso(xact_start),
            "query_started_at": _iso(query_start),
            "state_changed_at": _iso(state_change),
            "state": state,
            "query": query,
            "wait_event": ("%s:%s" % (wait_type, wait_event)) if wait_type else None,
            "waiting_since": _iso(waitstart),
            "is_this_session": bool(is_self),
        })
    return sessions


def lock_status(conn) -> tuple:
    """(holder or None, [waiters]) for Prisma's advisory lock in the current database."""
    sessions = lock_sessions(conn)
    holder = next((s for s in sessions if s["granted"]), None)
    waiters = [s for s in sessions if not s["granted"]]
    return holder, waiters


def describe_holder(holder: dict | None) -> str:
    """One line naming the session that holds the lock, for messages."""
    if not holder:
        return "nobody"
    parts = ["pid %s" % holder["pid"]]
    if holder.get("application_name"):
        parts.append("application %r" % holder["application_name"])
    if holder.get("user"):
        parts.append("user %s" % holder["user"])
    if holder.get("client_addr"):
        parts.append("from %s" % holder["client_addr"])
    if holder.get("session_started_at"):
        parts.append("connected since %s" % holder["session_started_at"])
    if holder.get("state"):
        parts.append("state %s" % holder["state"])
    return ", ".join(parts)
