"""Hostile .env files and secrets in output, with real files (a FIFO, /dev/zero, symlinks, a sparse 2 MiB file), a
real PostgreSQL 15 and the real modules run as Ansible runs them (issue 13).

Every test ends with the same checks: nothing hung, nothing ran that should not, no secret in any spelling anywhere
in what the module printed or wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.dotenv import MAX_ENV_FILE_BYTES
from tests.harness.modules import module_env, run_module

pytestmark = pytest.mark.integration

CHILD = """
import json, sys
from ansible_collections.prisma_ops.migrate.plugins.module_utils.dotenv import read_env_value
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
try:
    print(json.dumps({"value": read_env_value(sys.argv[1], "DATABASE_URL")}))
except PrismaOpsError as exc:
    print(json.dumps({"error": exc.msg}))
"""


def read_in_child(path) -> dict:
    """read_env_value in a child process: a reader that blocks (the bug) fails this test at the bound, not the suite."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=module_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def spellings(secret: str) -> list:
    return [secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]]


def assert_nowhere(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in spellings(secret):
            assert form not in text, form


# ---------------------------------------------------------------- the reader, on real files


def test_a_fifo_is_refused_at_once_without_a_writer(tmp_path):
    fifo = tmp_path / ".env"
    os.mkfifo(fifo)
    result = read_in_child(fifo)
    assert "is a FIFO (named pipe), not a .env file" in result["error"]
    assert "point env_file at the app's .env file itself" in result["error"]


def test_dev_zero_is_refused_not_read_without_end():
    result = read_in_child("/dev/zero")
    assert "/dev/zero is a character device, not a .env file" in result["error"]


def test_a_file_over_the_bound_is_refused_and_one_at_the_bound_is_read(tmp_path):
    big = tmp_path / "big.env"
    with open(big, "wb") as handle:
        handle.truncate(2 * MAX_ENV_FILE_BYTES)  # sparse: 2 MiB of NUL bytes, no disk used
    assert "is 2097152 bytes, more than the 1048576" in read_in_child(big)["error"]
    line = b"DATABASE_URL=postgresql://u@db/app\n"
    exact = tmp_path / "exact.env"
    exact.write_bytes(b"#" * (MAX_ENV_FILE_BYTES - len(line) - 1) + b"\n" + line)
    assert os.path.getsize(exact) == MAX_ENV_FILE_BYTES
    assert read_in_child(exact) == {"value": "postgresql://u@db/app"}


def test_symlinks_are_followed_to_a_regular_file_only(tmp_path):
    real = tmp_path / "shared.env"
    real.write_text("DATABASE_URL=postgresql://u@db/app\n")
    (tmp_path / "link.env").symlink_to(real)  # the usual current/.env -> shared/.env layout
    assert read_in_child(tmp_path / "link.env") == {"value": "postgresql://u@db/app"}
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to_pipe.env").symlink_to(tmp_path / "pipe")
    assert "is a FIFO" in read_in_child(tmp_path / "to_pipe.env")["error"]
    (tmp_path / "to_zero.env").symlink_to("/dev/zero")
    assert "is a character device" in read_in_child(tmp_path / "to_zero.env")["error"]
    (tmp_path / "dangling.env").symlink_to(tmp_path / "gone")
    assert "does not exist on this host" in read_in_child(tmp_path / "dangling.env")["error"]


# ---------------------------------------------------------------- the modules


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_modules_refuse_a_fifo_or_device_env_file(tmp_path, kind):
    path = tmp_path / ".env"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    result = run_module("prisma_migration_info", {"env_file": str(path)}, timeout=60)
    assert result.get("failed"), result
    assert ("is a FIFO" if kind == "fifo" else "is a character device") in result["msg"]


def test_a_password_cut_by_an_unquoted_hash_is_refused_and_never_shown(pg_cluster, tmp_path):
    role = pg_cluster.create_role("app_hash_%s" % os.getpid(), password="Zq7#Xw9-hash")
    database = pg_cluster.create_database(owner=role)
    try:
        env = tmp_path / ".env"
        url = "postgresql://%s:Zq7#Xw9-hash@127.0.0.1:%d/%s" % (role.name, pg_cluster.port, database.name)
        env.write_text("DATABASE_URL=%s\n" % url)
        result = run_module("prisma_migration_info", {"env_file": str(env)})
        assert result.get("failed") and "unquoted '#'" in result["msg"], result
        assert_nowhere(result["_stdout"] + result["_stderr"], "Zq7", "Xw9-hash")
        # Quoted but not encoded: still a URL cut at '#' (for Prisma too), refused as malformed, masked.
        env.write_text("DATABASE_URL='%s'\n" % url)
        result = run_module("prisma_migration_info", {"env_file": str(env)})
        assert result.get("failed") and "malformed" in result["msg"], result
        assert_nowhere(result["_stdout"] + result["_stderr"], "Zq7", "Xw9-hash")
        # Encoded, as the message says: the same password connects.
        env.write_text("DATABASE_URL=%s\n" % url.replace("#", "%23"))
        result = run_module("prisma_migration_info", {"env_file": str(env)})
        assert not result.get("failed"), result["msg"]
        assert result["table_exists"] is False
        assert_nowhere(result["_stdout"] + result["_stderr"], "Zq7", "Xw9-hash")
    finally:
        pg_cluster.drop_database(database.name)


def test_a_quoted_password_with_hash_at_and_quotes_connects_and_is_masked(pg_cluster, tmp_path):
    password = "p#ss@w\"rd 'x%23"
    role = pg_cluster.create_role("app_quoted_%s" % os.getpid(), password=password)
    database = pg_cluster.create_database(owner=role)
    try:
        env = tmp_path / ".env"
        env.write_text("DATABASE_URL=`postgresql://%s:%s@127.0.0.1:%d/%s`\n"
                       % (role.name, quote(password, safe=""), pg_cluster.port, database.name))
        result = run_module("prisma_migration_info", {"env_file": str(env)})
        assert not result.get("failed"), result["msg"]
        assert_nowhere(result["_stdout"] + result["_stderr"], password)
    finally:
        pg_cluster.drop_database(database.name)


def test_deploy_prints_no_secret_of_its_environment_or_its_own(db, tmp_path, monkeypatch):
    given = "Pw#d 1@x'y\"z"           # DB_PWD given in the task's environment option
    inherited = "inherited-PGPASS-9"  # PGPASS in the module's own environment, which the command inherits
    monkeypatch.setenv("PGPASS", inherited)
    monkeypatch.setenv("APP_API_TOKEN", "inherited-token-7")
    result = run_module("prisma_migrate_deploy", {
        "database_url": db.url(), "project_dir": str(tmp_path),
        "environment": {"DB_PWD": given, "NODE_ENV": "production"},
        # The value written into the command itself too (as the shell's $0): shown masked in argv and messages.
        "command": ["sh", "-c", "env; echo \"pwd=$DB_PWD pass=$PGPASS token=$APP_API_TOKEN url=$DATABASE_URL\"; "
                    "echo 'No pending migrations to apply.'", given],
    })
    assert result["rc"] == 0 and not result.get("failed"), result
    printed = result["_stdout"] + result["_stderr"]
    assert "NODE_ENV=production" in result["stdout"] and "pwd=" in result["stdout"]
    assert_nowhere(printed, given, inherited, "inherited-token-7", db.owner.password, db.url())
    assert result["argv"][-1] == "********"
    args = {"database_url": db.url(), "project_dir": str(tmp_path), "environment": {"DB_PWD": given},
            "command": ["sh", "-c", "true", given]}
    check = run_module("prisma_migrate_deploy", args, check_mode=True)
    assert check["argv"][-1] == "********" and "would run" in check["msg"]
    assert_nowhere(check["_stdout"] + check["_stderr"], given)


def test_a_deploy_command_that_exits_0_silently_is_a_failure(db, tmp_path):
    """Exit 0 is not enough: a wrapper that never ran Prisma (or a stand-in engine that applies nothing) must not read
    as "no pending migrations"."""
    for command in (["true"], ["sh", "-c", "echo 'Prisma schema loaded from prisma/schema.prisma'"]):
        result = run_module("prisma_migrate_deploy", {"database_url": db.url(), "project_dir": str(tmp_path),
                                                      "command": command})
        assert result.get("failed") is True and result["code"] == "deploy_unconfirmed", result
        assert result["rc"] == 0 and result["applied"] == [] and result["changed"] is False
        assert "exited 0 but printed neither Prisma's \"No pending migrations to apply\"" in result["msg"]


def test_deploy_refuses_a_wrapped_reset_and_runs_nothing(db, tmp_path):
    db.execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2)")
    marker = tmp_path / "ran"
    for command in (["sh", "-c", "touch %s; npx prisma migrate reset --force" % marker],
                    ["bash", "-lc", "touch %s && npx prisma db push --accept-data-loss" % marker],
                    ["env", "-S", "touch %s ; npx prisma migrate reset" % marker]):
        result = run_module("prisma_migrate_deploy", {"database_url": db.url(), "project_dir": str(tmp_path),
                                                      "command": command})
        assert result.get("failed") and "refusing" in result["msg"], result
        assert "rc" not in result
    assert not marker.exists()
    assert db.execute("SELECT count(*) FROM kept") == [(2,)]


def test_drift_report_module_writes_private_masked_files(tmp_path):
    secret = "Zq7-report-secret"
    results = {"leaky": {"failed": True, "msg": "DATABASE_URL is malformed: postgresql://app:%s@db/app" % secret},
               "down": None}
    dest = tmp_path / "reports"
    result = run_module("prisma_drift_report", {"dest": str(dest), "results": results,
                                                "prometheus_path": str(tmp_path / "prisma_drift.prom")})
    assert not result.get("failed"), result
    files = [p for p in dest.rglob("*") if p.is_file()]
    assert len(files) == 7  # five formats and two per-host JSON files
    for path in files:
        assert (path.stat().st_mode & 0o777) == (0o644 if path.suffix == ".prom" else 0o600), path
        assert secret not in path.read_text(), path
    assert (tmp_path / "prisma_drift.prom").stat().st_mode & 0o777 == 0o644
    # The module's own result (its invocation echoes the input it was given, as every Ansible module does).
    assert secret not in json.dumps({k: v for k, v in result.items() if not k.startswith("_") and k != "invocation"})
    refused = run_module("prisma_drift_report", {"dest": str(tmp_path / "open"), "results": results, "mode": "0644"})
    assert refused.get("failed") and "every user of this machine" in refused["msg"], refused
    assert not (tmp_path / "open").exists()


@pytest.mark.prisma
@pytest.mark.both_prisma_clis
def test_check_mode_reports_node_and_prisma_and_stops_on_a_node_too_old(db, project, tmp_path):
    """cli_check runs node where the deploy runs: the versions are reported; a Node older than the project's Prisma
    needs stops before anything else runs (a stand-in `node` on the deploy's PATH says v20.18.0 and Prisma 7.10.1)."""
    import os
    from tests.harness.scenario import deploy_environment
    args = {"database_url": db.url(), "project_dir": str(project.root),
            "command": [str(project.root / "node_modules" / ".bin" / "prisma"), "migrate", "deploy"],
            "environment": deploy_environment(project)}
    ok = run_module("prisma_migrate_deploy", args, check_mode=True)
    assert not ok.get("failed"), ok
    assert ok["cli_check"]["versions"]["prisma"] == project.version and ok["cli_check"]["versions"]["node"].startswith("v")
    assert "Prisma %s, Node v" % project.version in ok["msg"]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "node").write_text("#!/bin/sh\nprintf 'v20.18.0 7.10.1'\n")
    (fake / "node").chmod(0o755)
    old = dict(args, environment=dict(args["environment"], PATH="%s:%s" % (fake, os.environ["PATH"])))
    refused = run_module("prisma_migrate_deploy", old, check_mode=True)
    assert refused.get("failed") is True and refused["code"] == "node_too_old", refused
    assert "Node v20.18.0 cannot run Prisma 7.10.1, which needs Node ^20.19 || ^22.12 || >=24" in refused["msg"]
    assert "Nothing was changed" in refused["msg"]
