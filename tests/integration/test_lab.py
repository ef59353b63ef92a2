"""The lab (docs/lab.md): real SSH hosts in containers, one Prisma failure scenario each.

Run with `make test-lab` (or `pytest -m lab`; `make test` deselects them): the first test brings the lab up with scripts/lab.sh
(a cold build takes minutes, see docs/lab.md); the containers are left running afterwards.
Everything goes over real SSH to 127.0.0.1 with the lab's key and the generated inventory.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_SH = REPO / "scripts" / "lab.sh"
INVENTORY = REPO / "lab" / "inventory.yml"
BACKEND = "/opt/schooliat/repo/Backend"
FAILED_SCENARIOS = ("applied_but_stuck", "not_applied", "partial", "table_made_by_hand")

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.slow]


def run(argv: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


@pytest.fixture(scope="module")
def lab():
    """Bring the lab up once for this module; return the inventory's hosts with their variables."""
    started = time.monotonic()
    proc = run([str(LAB_SH), "up"], timeout=1800)
    assert proc.returncode == 0, "scripts/lab.sh up failed:\n" + proc.stdout + proc.stderr
    print("lab up took %.1f s" % (time.monotonic() - started))
    group = yaml.safe_load(INVENTORY.read_text())["lab"]
    hosts = {}
    for name, host_vars in group["hosts"].items():
        merged = dict(group["vars"])
        merged.update(host_vars)
        hosts[name] = merged
    return hosts


def ssh(host: dict, command: str, timeout: float = 180) -> subprocess.CompletedProcess:
    argv = ["ssh", "-i", host["ansible_ssh_private_key_file"], "-p", str(host["ansible_port"]),
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "%s@%s" % (host["ansible_user"], host["ansible_host"]), command]
    return run(argv, timeout=timeout)


def adhoc(module: str, args: str = "") -> dict:
    """`ansible lab -m MODULE` over SSH; each host's result (oneline output parsed)."""
    argv = ["ansible", "lab", "-i", str(INVENTORY), "-o", "-m", module]
    if args:
        argv += ["-a", args]
    env = dict(os.environ, ANSIBLE_DEPRECATION_WARNINGS="False")
    proc = run(argv, timeout=600, env=env)
    results = {}
    for line in proc.stdout.splitlines():
        if " | " not in line or " => " not in line:
            continue
        name, rest = line.split(" | ", 1)
        status, payload = rest.split(" => ", 1)
        result = json.loads(payload)
        result["_status"] = status.strip()
        results[name.strip()] = result
    assert results, "ansible printed no host results:\n" + proc.stdout + proc.stderr
    return results


def test_ping_every_host_over_ssh(lab):
    results = adhoc("ansible.builtin.ping")
    assert sorted(results) == sorted(lab)
    for name, result in results.items():
        assert result["_status"] == "SUCCESS" and result.get("ping") == "pong", (name, result)


def test_migration_info_reports_each_scenario(lab):
    results = adhoc("prisma_ops.migrate.prisma_migration_info",
                    "env_file={{ lab_env_file }} migrations_dir={{ lab_migrations_dir }}")
    mismatches = []
    for name, host in lab.items():
        result = results.get(name, {})
        got = {"deploy_blocked": result.get("deploy_blocked"), "in_sync": result.get("in_sync"),
               "pending": result.get("pending")}
        want_state = {"deploy_blocked": host["lab_scenario"] in FAILED_SCENARIOS + ("containerised",),
                      "in_sync": host["lab_scenario"] == "healthy"}
        if result.get("_status") != "SUCCESS":
            mismatches.append((name, result.get("msg")))
        elif any(got[key] != value for key, value in want_state.items()):
            mismatches.append((name, host["lab_scenario"], got))
        elif host["lab_expected_state"] == "pending" and not got["pending"]:
            mismatches.append((name, "nothing pending", got))
        elif host["lab_expected_state"] == "deploy_blocked":
            states = {m["name"]: m["state"] for m in result["migrations"]}
            if states.get(host["lab_failed_migration"]) != "failed":
                mismatches.append((name, "failed migration not reported failed", states))
    assert not mismatches, mismatches


@pytest.mark.parametrize("scenario", FAILED_SCENARIOS)
def test_real_deploy_answers_p3009(lab, scenario):
    """The real `npx prisma migrate deploy`, as the app user in the app dir, refuses: P3009."""
    host = next(h for h in lab.values() if h["lab_scenario"] == scenario)
    proc = ssh(host, "runuser -l app -c 'cd %s && npx prisma migrate deploy'" % BACKEND)
    assert proc.returncode != 0
    assert "P3009" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_containerised_host_reaches_the_app_with_docker_exec(lab):
    host = next(h for h in lab.values() if h["lab_scenario"] == "containerised")
    # Nothing of Prisma outside the containers on this host.
    assert ssh(host, "test ! -e %s/node_modules" % BACKEND).returncode == 0
    proc = ssh(host, "docker exec -u app -w %s %s npx prisma migrate deploy" % (BACKEND, host["lab_app_container"]))
    assert proc.returncode != 0
    assert "P3009" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    proc = ssh(host, "docker exec %s pg_dump --version" % host["lab_db_container"])
    assert proc.returncode == 0 and "15." in proc.stdout, proc.stdout + proc.stderr


def test_app_tree_env_file_and_role(lab):
    problems = []
    for name, host in lab.items():
        proc = ssh(host, "stat -c '%%U %%a' %s && test -f %s/src/prisma/db/schema.prisma "
                         "&& test -f %s/migration_lock.toml && test -d %s"
                   % (host["lab_env_file"], BACKEND, host["lab_migrations_dir"], host["lab_backup_dir"]))
        if proc.returncode != 0 or proc.stdout.split() != ["app", "600"]:
            problems.append((name, proc.stdout, proc.stderr))
        if host["lab_scenario"] == "containerised":
            continue
        proc = ssh(host, "runuser -u postgres -- psql -X -tA -p %s -c "
                         "\"SELECT rolsuper FROM pg_roles WHERE rolname = 'schooliat'\"" % host["lab_db_port"])
        if proc.stdout.strip() != "f":
            problems.append((name, "app role", proc.stdout, proc.stderr))
    assert not problems, problems


def test_second_up_is_fast_and_keeps_hosts(lab):
    started = time.monotonic()
    proc = run([str(LAB_SH), "up"], timeout=600)
    elapsed = time.monotonic() - started
    print("warm scripts/lab.sh up took %.1f s" % elapsed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building" not in proc.stdout and "debootstrap" not in proc.stdout, proc.stdout
    assert elapsed < 60, elapsed
    status = run([str(LAB_SH), "status"], timeout=300)
    assert status.returncode == 0, status.stdout + status.stderr
    for name in lab:
        assert name in status.stdout
