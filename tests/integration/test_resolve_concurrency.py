"""prisma_migrate_resolve under contention: Prisma's lock held by a session or by a real `prisma migrate deploy`,
a row locked by a hand edit, and the module's connection killed in the middle of its transaction."""

from __future__ import annotations

import subprocess
import threading
import time

import psycopg2
import pytest

from tests.harness.modules import run_module
from tests.harness.pgcluster import wait_for
from tests.harness.prisma import cli_env, oracle_bin

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma]

LOCK_KEY = 72707369
APP = "prisma_ops.migrate/prisma_migrate_resolve"
INIT = 'CREATE TABLE "User" ("id" SERIAL NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));\n'
BROKEN = 'CREATE TABLE "Broken" ("id" INTEGER);\nSELECT 1/0;\n'
SLOW = 'CREATE TABLE "Slow" ("id" INTEGER);\nSELECT pg_sleep(4);\n'
M_INIT, M_BROKEN, M_SLOW = "20250101000000_init", "20250102000000_broken", "20250102000000_slow"


def table(db) -> list:
    return db.execute("SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, "
                      "applied_steps_count FROM _prisma_migrations ORDER BY started_at, id")


def session(db, application_name: str):
    conn = psycopg2.connect(host="127.0.0.1", port=db.cluster.port, dbname=db.name, user=db.owner.name,
                            password=db.owner.password, application_name=application_name)
    conn.autocommit = True
    return conn


def prisma_lock_sessions(db) -> list:
    """(pid, granted, application_name) of every session holding or queued on Prisma's lock."""
    return db.execute("SELECT l.pid, l.granted, a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                      "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = %s AND l.objsubid = 1 "
                      "AND a.datname = current_database()", (LOCK_KEY,), superuser=True)


def module_backends(db) -> list:
    return db.execute("SELECT pid, wait_event_type, left(query, 40) FROM pg_stat_activity WHERE application_name = %s "
                      "AND datname = current_database()", (APP,), superuser=True)


def in_background(**run_args):
    box: dict = {}

    def target():
        box["result"] = run_module("prisma_migrate_resolve", run_args)
    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


@pytest.fixture
def failed(project, db):
    project.add_migration(M_INIT, INIT)
    project.add_migration(M_BROKEN, BROKEN)
    assert project.deploy().returncode == 1
    return db, project


def args(db, project, **extra):
    base = {"database_url": db.url(), "method": "native", "migrations_dir": str(project.migrations_dir),
            "name": M_BROKEN, "state": "applied"}
    base.update(extra)
    return base


def test_lock_held_by_a_session_times_out_naming_it_and_leaves_nothing_queued(failed):
    db, project = failed
    before = table(db)
    holder = session(db, "night-deploy")
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (LOCK_KEY,))
            pid = cur.fetchone()[1]
        started = time.monotonic()
        result = run_module("prisma_migrate_resolve", args(db, project, lock_timeout=1))
        elapsed = time.monotonic() - started

        assert result["_rc"] != 0 and result["code"] == "lock_timeout", result
        assert "pid %d" % pid in result["msg"] and "'night-deploy'" in result["msg"]
        assert "since" in result["msg"] and "pg_terminate_backend(%d)" % pid in result["msg"]
        assert "Nothing was written" in result["msg"] and db.owner.password not in result["_stdout"]
        assert result["lock_holder"]["pid"] == pid and result["lock_holder"]["application_name"] == "night-deploy"
        assert elapsed < 8
        # Unlike Prisma's client-side timeout, nothing is left queued behind the holder.
        assert prisma_lock_sessions(db) == [(pid, True, "night-deploy")]
        assert module_backends(db) == []
        assert table(db) == before
    finally:
        holder.close()


def test_killed_while_waiting_for_the_lock_fails_cleanly(failed):
    db, project = failed
    before = table(db)
    holder = session(db, "long-deploy")
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    thread, box = in_background(**args(db, project, lock_timeout=30))
    try:
        assert wait_for(lambda: bool(module_backends(db)), timeout=10)
        pid = module_backends(db)[0][0]
        assert db.execute("SELECT pg_terminate_backend(%s)", (pid,), superuser=True) == [(True,)]
        thread.join(30)
        result = box["result"]
        assert result["_rc"] != 0 and result["code"] == "transaction_failed", result
        assert "nothing was written" in result["msg"] and "Traceback" not in result["_stdout"] + result["_stderr"]
        assert table(db) == before
    finally:
        holder.close()


def test_waits_for_the_lock_then_resolves_and_releases_it(failed):
    db, project = failed
    holder = session(db, "short-job")
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    thread, box = in_background(**args(db, project, lock_timeout=15))
    try:
        # The module is polling (pg_try_advisory_lock), not queued: it never shows up as a waiter.
        assert wait_for(lambda: bool(module_backends(db)), timeout=10)
        time.sleep(1.2)
        assert [r[1] for r in prisma_lock_sessions(db)] == [True]
        assert [r[3] for r in table(db)].count(M_BROKEN) == 1  # nothing written while the lock is held
    finally:
        holder.close()
    thread.join(30)
    result = box["result"]
    assert result["_rc"] == 0 and result["changed"] is True, result
    assert result["lock_waited"] >= 1.0
    rows = [r for r in table(db) if r[3] == M_BROKEN]
    assert len(rows) == 2 and rows[0][5] is not None and rows[1][2] is not None
    assert prisma_lock_sessions(db) == []  # unlocked, not just left to the closed session


def test_a_running_prisma_deploy_is_never_interleaved(project, db):
    """While deploy runs a slow migration its row looks failed (finished_at NULL): without the lock a resolve
    would mark it rolled back or applied under deploy's feet. With it, the module times out naming deploy,
    or waits and then sees the finished row."""
    project.add_migration(M_INIT, INIT)
    assert project.deploy().returncode == 0
    project.add_migration(M_SLOW, SLOW)
    deploy = subprocess.Popen([str(oracle_bin()), "migrate", "deploy"], cwd=project.root, env=cli_env(db.url()),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: M_SLOW in [r[3] for r in table(db)], timeout=15, interval=0.1)
        holders = [r for r in prisma_lock_sessions(db) if r[1]]
        assert len(holders) == 1
        deploy_pid = holders[0][0]

        impatient = run_module("prisma_migrate_resolve",
                               args(db, project, name=M_SLOW, state="rolled_back", lock_timeout=1))
        patient = run_module("prisma_migrate_resolve",
                             args(db, project, name=M_SLOW, state="applied", lock_timeout=20))
    finally:
        out, err = deploy.communicate(timeout=60)

    assert deploy.returncode == 0, out + err
    assert impatient["code"] == "lock_timeout" and "pid %d" % deploy_pid in impatient["msg"], impatient
    # The patient run planned a write from the in-flight row, waited, re-read under the lock: already applied.
    assert patient["_rc"] == 0 and patient["changed"] is False, patient
    assert patient["outcomes"][0]["outcome"] == "unchanged" and patient["lock_waited"] > 0
    slow = [r for r in table(db) if r[3] == M_SLOW]
    assert len(slow) == 1 and slow[0][2] is not None and slow[0][5] is None and slow[0][7] == 1
    assert prisma_lock_sessions(db) == []


def test_a_hand_edit_holding_a_row_lock_bounds_the_wait_and_writes_nothing(failed):
    db, project = failed
    before = table(db)
    editor = psycopg2.connect(host="127.0.0.1", port=db.cluster.port, dbname=db.name, user=db.owner.name,
                              password=db.owner.password, application_name="psql-by-hand")
    try:
        with editor.cursor() as cur:  # an open transaction, as in a forgotten psql session
            cur.execute("SELECT id FROM _prisma_migrations WHERE migration_name = %s FOR UPDATE", (M_BROKEN,))
        result = run_module("prisma_migrate_resolve", args(db, project, lock_timeout=1))
    finally:
        editor.rollback()
        editor.close()
    assert result["_rc"] != 0 and result["code"] == "row_lock_timeout", result
    assert "nothing was written" in result["msg"]
    assert table(db) == before and prisma_lock_sessions(db) == []


def test_connection_killed_mid_transaction_leaves_no_partial_write(failed):
    db, project = failed
    before = table(db)
    # Test-only trigger: every INSERT into the table waits for an advisory lock this test holds, so the
    # module stops after its UPDATE (rolled_back_at on the failed row) and before its INSERT.
    db.execute("CREATE FUNCTION hold_insert() RETURNS trigger LANGUAGE plpgsql AS "
               "$$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$")
    db.execute("CREATE TRIGGER hold_insert BEFORE INSERT ON _prisma_migrations FOR EACH ROW EXECUTE FUNCTION hold_insert()")
    gate = session(db, "test-gate")
    with gate.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(4242)")
    thread, box = in_background(**args(db, project, lock_timeout=60))
    try:
        def blocked_in_insert():
            return any(w == "Lock" and q.startswith("INSERT") for _pid, w, q in module_backends(db))
        assert wait_for(blocked_in_insert, timeout=15)
        pid = module_backends(db)[0][0]
        # Its UPDATE is done but uncommitted: invisible from outside.
        assert table(db) == before
        assert db.execute("SELECT pg_terminate_backend(%s)", (pid,), superuser=True) == [(True,)]
        thread.join(30)
    finally:
        gate.close()
    result = box["result"]
    assert result["_rc"] != 0 and result["code"] == "transaction_failed", result
    # Nothing was written, and the advice names what to check before running again (a lost connection).
    assert "nothing was written" in result["msg"] and "idle_in_transaction_session_timeout" in result["msg"]
    assert [s.split()[0] for s in result["statements_not_committed"]] == ["UPDATE", "INSERT"]
    assert table(db) == before  # the UPDATE went with the transaction
    assert prisma_lock_sessions(db) == []  # the dead session's lock went with it
    db.execute("DROP TRIGGER hold_insert ON _prisma_migrations")
    again = run_module("prisma_migrate_resolve", args(db, project))
    assert again["_rc"] == 0 and again["changed"] is True
