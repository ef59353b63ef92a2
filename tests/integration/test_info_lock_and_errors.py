"""prisma_migration_info: Prisma's lock holder, and every bad input failing with one clear, secret-free message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import psycopg2
import pytest

from tests.harness.modules import REPO
from tests.harness.pgcluster import free_port, wait_for

INIT = 'CREATE TABLE "User" ("id" SERIAL PRIMARY KEY);\n'
LOCK_KEY = 72707369


def hold_prisma_lock(db, application_name: str):
    conn = psycopg2.connect(host="127.0.0.1", port=db.cluster.port, dbname=db.name, user=db.owner.name,
                            password=db.owner.password, application_name=application_name)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    return conn, pid


def test_lock_holder_is_named_and_cleared(project, info, db):
    project.add_migration("20250101000000_init", INIT)
    conn, pid = hold_prisma_lock(db, "night-deploy")
    try:
        result = info(migrations_dir=str(project.migrations_dir))
    finally:
        conn.close()

    holder = result["lock"]
    assert holder["pid"] == pid and holder["application_name"] == "night-deploy"
    assert holder["user"] == db.owner.name and holder["client_addr"] == "127.0.0.1"
    assert holder["state"] == "idle" and holder["session_started_at"]
    assert result["lock_waiters"] == []
    assert wait_for(lambda: info()["lock"] is None, timeout=5)


def test_lock_in_another_database_is_not_this_databases_lock(pg_cluster, info, db):
    other = pg_cluster.create_database()
    conn, _pid = hold_prisma_lock(other, "other-app")
    try:
        assert info()["lock"] is None
    finally:
        conn.close()
        pg_cluster.drop_database(other.name)


@pytest.mark.prisma
@pytest.mark.both_prisma_clis
def test_a_waiting_prisma_deploy_shows_up_behind_the_holder(project, info, db):
    from tests.harness.prisma import cli_env, oracle_bin
    project.add_migration("20250101000000_init", INIT)
    conn, pid = hold_prisma_lock(db, "stuck-session")
    deploy = subprocess.Popen([str(oracle_bin(project.version)), "migrate", "deploy"], cwd=project.root,
                              env=cli_env(db.url(), project.version),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = {}

        def waiter_visible() -> bool:
            seen.update(info())
            return bool(seen.get("lock_waiters"))

        assert wait_for(waiter_visible, timeout=8, interval=0.3)
        assert seen["lock"]["pid"] == pid
        waiter = seen["lock_waiters"][0]
        assert waiter["granted"] is False and waiter["user"] == db.owner.name
        assert "pg_advisory_lock(72707369)" in waiter["query"]
        assert waiter["waiting_since"] is not None
    finally:
        conn.close()  # releasing the lock lets the deploy go on
        out, err = deploy.communicate(timeout=60)
    assert deploy.returncode == 0, out + err
    assert db.execute("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")[0][0] == 1


def assert_clean_failure(result: dict, *needles: str, secret: str | None = None) -> None:
    assert result["_rc"] != 0 and result.get("failed") is True, result
    for needle in needles:
        assert needle in result["msg"], result["msg"]
    if secret:
        assert secret not in result["_stdout"] + result["_stderr"]


def test_wrong_password(db):
    from tests.harness.modules import run_module
    secret = "Wr0ng-P@ss-7391"
    url = "postgresql://%s:%s@127.0.0.1:%d/%s" % (db.owner.name, "Wr0ng-P%40ss-7391", db.cluster.port, db.name)
    result = run_module("prisma_migration_info", {"database_url": url})
    assert_clean_failure(result, "password authentication failed", db.owner.name, "127.0.0.1:%d" % db.cluster.port,
                         secret=secret)
    assert "Wr0ng-P%40ss-7391" not in result["_stdout"]


def test_unreachable_server():
    from tests.harness.modules import run_module
    port = free_port()
    result = run_module("prisma_migration_info", {"database_url": "postgresql://app:Unre4ch-Secret@127.0.0.1:%d/app" % port,
                                                  "connect_timeout": 3})
    assert_clean_failure(result, "connection refused", "127.0.0.1:%d/app" % port, secret="Unre4ch-Secret")


def test_malformed_urls_fail_without_the_password():
    from tests.harness.modules import run_module
    cases = {
        "postgresql://app:M4lformed-Secret@127.0.0.1:abc/app": "malformed",
        "mysql://app:M4lformed-Secret@127.0.0.1:3306/app": "not a PostgreSQL URL",
        "postgresql://app:M4lformed-Secret@/app": "has no host",
        "prisma://accelerate.example/?api_key=M4lformed-Secret": "not a PostgreSQL URL",
    }
    for url, needle in cases.items():
        assert_clean_failure(run_module("prisma_migration_info", {"database_url": url}), needle, secret="M4lformed-Secret")


def test_migrations_dir_that_does_not_exist(db, tmp_path):
    from tests.harness.modules import run_module
    missing = tmp_path / "nope" / "migrations"
    result = run_module("prisma_migration_info", {"database_url": db.url(), "migrations_dir": str(missing)})
    assert_clean_failure(result, "migrations_dir %s does not exist" % missing, secret=db.owner.password)


def test_env_file_read_on_the_host(project, db, tmp_path):
    from tests.harness.modules import run_module
    project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    env_file = tmp_path / ".env"
    env_file.write_text('# app settings\nexport NODE_ENV=production\nDATABASE_URL = "%s" # primary\nOTHER_SECRET=ZzTopSecret\n'
                        % db.url())

    ok = run_module("prisma_migration_info", {"env_file": str(env_file), "migrations_dir": str(project.migrations_dir)})
    wrong_var = run_module("prisma_migration_info", {"env_file": str(env_file), "env_var": "DB_URL"})

    assert ok["_rc"] == 0 and ok["in_sync"] is True
    assert ok["connection"]["source"] == "DATABASE_URL in %s" % env_file
    assert db.owner.password not in ok["_stdout"]
    assert_clean_failure(wrong_var, "does not define DB_URL", "DATABASE_URL, NODE_ENV, OTHER_SECRET",
                         secret=db.owner.password)
    assert "ZzTopSecret" not in wrong_var["_stdout"]


def test_discrete_login_options(project, db):
    from tests.harness.modules import run_module
    project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    result = run_module("prisma_migration_info", {
        "login_host": "127.0.0.1", "login_port": db.cluster.port, "login_user": db.owner.name,
        "login_password": db.owner.password, "login_db": db.name, "migrations_dir": str(project.migrations_dir)})
    assert result["_rc"] == 0 and result["in_sync"] is True
    assert result["connection"]["source"] == "the login_* options"
    assert db.owner.password not in result["_stdout"]


def test_url_and_login_options_are_mutually_exclusive(db):
    from tests.harness.modules import run_module
    result = run_module("prisma_migration_info", {"database_url": db.url(), "login_user": "x"})
    assert_clean_failure(result, "mutually exclusive", secret=db.owner.password)


def ansible_adhoc(tmp_path: Path, module_args: dict, extra_vars: dict, python: str, verbosity: str = "") -> subprocess.CompletedProcess:
    """Run the module through the real `ansible` CLI; secrets travel in an extra-vars file, never argv."""
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(dict(extra_vars, ansible_python_interpreter=python)))
    os.chmod(vars_file, 0o600)
    argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-m",
            "prisma_ops.migrate.prisma_migration_info", "-a", json.dumps(module_args), "-e", "@%s" % vars_file]
    if verbosity:
        argv.append(verbosity)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_missing_psycopg2_says_what_to_install(db, tmp_path):
    bare = tmp_path / "bare-venv"
    venv.EnvBuilder(with_pip=False).create(bare)
    started = time.monotonic()
    proc = ansible_adhoc(tmp_path, {"database_url": "{{ url }}"}, {"url": db.url()}, str(bare / "bin" / "python"))
    assert time.monotonic() - started < 120
    assert proc.returncode != 0
    assert "psycopg2 is not installed" in proc.stdout and "python3-psycopg2" in proc.stdout
    assert db.owner.password not in proc.stdout + proc.stderr


def test_no_secret_at_vvv_on_success_or_failure(project, db, tmp_path):
    project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    args = {"database_url": "{{ url }}", "migrations_dir": str(project.migrations_dir)}
    good = ansible_adhoc(tmp_path, args, {"url": db.url()}, sys.executable, "-vvv")
    wrong = "Vvv-Wr0ng-Secret-55"
    bad_url = db.url().replace(db.owner.password, wrong)
    bad = ansible_adhoc(tmp_path, args, {"url": bad_url}, sys.executable, "-vvv")

    assert good.returncode == 0 and "in_sync: true" in good.stdout
    assert bad.returncode != 0 and "password authentication failed" in bad.stdout
    for proc, secret in ((good, db.owner.password), (bad, wrong)):
        assert secret not in proc.stdout + proc.stderr
