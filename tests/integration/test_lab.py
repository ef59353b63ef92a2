"""The lab (docs/lab.md): real SSH hosts in containers, one Prisma failure scenario each.

Run with `make test-lab` (or `pytest -m lab`; `make test` deselects them): the first test brings the lab up with scripts/lab.sh
(a cold build takes minutes, see docs/lab.md); the containers are left running afterwards.
Everything goes over real SSH to 127.0.0.1 with the lab's key and the generated inventory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_SH = REPO / "scripts" / "lab.sh"
INVENTORY = REPO / "lab" / "inventory.yml"
BACKEND = "/opt/schooliat/repo/Backend"
FAILED_SCENARIOS = ("applied_but_stuck", "not_applied", "partial", "table_made_by_hand")

# make test-lab runs this file on one worker, in order, beside test_faults.py on another (--dist loadfile):
# the two files use separate hosts. The Molecule scenario comes last: it rebuilds the lab's scenarios.
pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.slow]


def run(argv: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def changed_hosts(hosts: dict) -> list:
    """Hosts that are no longer as their scenario left them: a backup taken, or not the scenario's failed rows."""
    changed = []
    for name, host in hosts.items():
        container = host.get("lab_db_container", name)
        failed = run(["docker", "exec", container, "runuser", "-u", "postgres", "--", "psql", "-X", "-tA", "-p",
                      str(host["lab_db_port"]), "-d", "schooliat", "-c", "SELECT count(*) FROM _prisma_migrations "
                      "WHERE finished_at IS NULL AND rolled_back_at IS NULL"], timeout=60).stdout.strip()
        dumps = run(["docker", "exec", name, "sh", "-c", "ls %s | grep -c dump || true" % host["lab_backup_dir"]],
                    timeout=60).stdout.strip()
        if failed != ("1" if host["lab_expected_state"] == "deploy_blocked" else "0") or dumps != "0":
            changed.append(name)
    return changed


def read_hosts() -> dict:
    group = yaml.safe_load(INVENTORY.read_text())["lab"]
    return {name: dict(group["vars"], **host_vars) for name, host_vars in group["hosts"].items()}


@pytest.fixture(scope="module")
def lab():
    """Bring the lab up once for this module, every scenario as built (reset if an earlier run recovered a host);
    return the inventory's hosts with their variables."""
    started = time.monotonic()
    proc = run([str(LAB_SH), "up"], timeout=1800)
    assert proc.returncode == 0, "scripts/lab.sh up failed:\n" + proc.stdout + proc.stderr
    changed = changed_hosts(read_hosts())
    if changed:
        print("rebuilding the lab's scenarios: %s were changed by an earlier run" % ", ".join(changed))
        proc = run([str(LAB_SH), "reset"], timeout=1800)
        assert proc.returncode == 0, "scripts/lab.sh reset failed:\n" + proc.stdout + proc.stderr
    print("lab up took %.1f s" % (time.monotonic() - started))
    hosts = read_hosts()
    return hosts


def ssh(host: dict, command: str, timeout: float = 180) -> subprocess.CompletedProcess:
    argv = ["ssh", "-i", host["ansible_ssh_private_key_file"], "-p", str(host["ansible_port"]),
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "%s@%s" % (host["ansible_user"], host["ansible_host"]), command]
    return run(argv, timeout=timeout)


def adhoc(module: str, args: str = "") -> dict:
    """`ansible lab -m MODULE` over SSH; each host's result (oneline output parsed)."""
    argv = [str(Path(sys.executable).parent / "ansible"), "lab", "-i", str(INVENTORY), "-o", "-m", module]
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
        proc = ssh(host, "stat -c '%%U %%a' %s && test -f %s/%s "
                         "&& test -f %s/migration_lock.toml && test -d %s"
                   % (host["lab_env_file"], BACKEND, host["lab_schema_path"], host["lab_migrations_dir"],
                      host["lab_backup_dir"]))
        if proc.returncode != 0 or proc.stdout.split() != ["app", "600"]:
            problems.append((name, proc.stdout, proc.stderr))
        if host["lab_scenario"] == "containerised":
            continue
        proc = ssh(host, "runuser -u postgres -- psql -X -tA -p %s -c "
                         "\"SELECT rolsuper FROM pg_roles WHERE rolname = 'schooliat'\"" % host["lab_db_port"])
        if proc.stdout.strip() != "f":
            problems.append((name, "app role", proc.stdout, proc.stderr))
    assert not problems, problems


def test_the_prisma7_host_is_a_prisma7_project_in_its_own_layout(lab):
    """lab-prisma7: the real 7.10.1 CLI, a config at the project root naming db/schema.prisma and db/migrations,
    nothing under prisma/; the inventory names neither the folder nor the deploy command (the roles find them);
    its own `npx prisma migrate deploy` answers P3009, and the read-only module finds the layout over SSH."""
    host = lab["lab-prisma7"]
    assert host["recover_migrations_dir"] == "" and host["recover_deploy_command"] == []
    version = ssh(host, "runuser -l app -c 'cd %s && npx prisma --version'" % BACKEND)
    assert re.search(r"^prisma\s+:\s+7\.10\.1$", version.stdout, re.M), version.stdout + version.stderr
    assert "Node.js" in version.stdout and "v20." in version.stdout, version.stdout
    assert ssh(host, "test ! -e %s/prisma && test -f %s/prisma.config.ts" % (BACKEND, BACKEND)).returncode == 0
    blocked = ssh(host, "runuser -l app -c 'cd %s && npx prisma migrate deploy'" % BACKEND)
    assert blocked.returncode != 0 and "P3009" in blocked.stdout + blocked.stderr, blocked.stdout + blocked.stderr
    # 7.x prints the database it will touch, from the config's datasource.
    assert 'Datasource "db": PostgreSQL database "schooliat"' in blocked.stdout + blocked.stderr
    found = adhoc("prisma_ops.migrate.prisma_project_info", "project_dir=%s" % BACKEND)
    assert found["lab-prisma7"]["migrations_dir"] == BACKEND + "/db/migrations", found["lab-prisma7"]
    assert found["lab-prisma7"]["schema_source"] == "config"
    assert found["lab-prisma7"]["deploy_command"] == [BACKEND + "/node_modules/.bin/prisma", "migrate", "deploy"]
    # The 6.x hosts keep their schema under src/prisma/db, which their config names too.
    assert found["lab-notapplied"]["migrations_dir"] == BACKEND + "/src/prisma/db/migrations"


def test_second_up_rebuilds_nothing_and_keeps_hosts(lab):
    started = time.monotonic()
    proc = run([str(LAB_SH), "up"], timeout=600)
    print("warm scripts/lab.sh up took %.1f s" % (time.monotonic() - started))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building" not in proc.stdout and "debootstrap" not in proc.stdout, proc.stdout
    status = run([str(LAB_SH), "status"], timeout=300)
    assert status.returncode == 0, status.stdout + status.stderr
    for name in lab:
        assert name in status.stdout


def test_no_daemon_holds_the_lab_lock(lab):
    """The Docker engine that lab.sh started must not hold lab.sh's lock: it once inherited the lock's
    descriptor, and every later `lab.sh up` waited 20 minutes for a lock nobody would release."""
    cache = Path(os.environ.get("LAB_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                 / "prisma_ops_migrate" / "lab")
    lock = str((cache / "lab.lock").resolve())
    daemons = run(["pgrep", "-x", "dockerd|containerd|containerd-shim-runc-v2"], timeout=30).stdout.split()
    assert daemons, "no Docker daemon process found, yet the lab is up"
    holders = []
    for pid in daemons:
        fd_dir = Path("/proc", pid, "fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else ():
            try:
                if os.readlink(fd) == lock:
                    holders.append(pid)
            except OSError:
                continue  # the descriptor closed while we looked
    assert not holders, "Docker daemon process(es) %s hold %s open" % (holders, lock)


def lab_history(host: dict) -> list:
    """(name, finished, rolled back) rows of the host's _prisma_migrations, read with psql as the superuser."""
    container = host.get("lab_db_container", host["inventory_name"])
    proc = run(["docker", "exec", container, "runuser", "-u", "postgres", "--", "psql", "-X", "-tA", "-F", "|",
                "-p", str(host["lab_db_port"]), "-d", "schooliat", "-c",
                "SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL FROM _prisma_migrations "
                "ORDER BY started_at"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [tuple(line.split("|")) for line in proc.stdout.splitlines()]


def recover(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY), "playbooks/recover.yml", "-l", "lab",
            "-e", json.dumps({"recover_report_dir": str(tmp_path / "reports"), "recover_deploy_retry_delay": 1}), *extra]
    return run(argv, timeout=900, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))


def test_fleet_in_batches_stops_past_max_fail_and_skips_an_unreachable_host(lab, tmp_path):
    """recover.yml over the lab in batches: max_fail_percentage stops the later batches; then, with one host's
    container stopped, that host is reported unreachable and skipped while the others recover."""
    for name, host in lab.items():
        host["inventory_name"] = name
    before = {name: lab_history(host) for name, host in lab.items()}
    # Batches of 3 in inventory order: [applied, notapplied, partial], [byhand, pending, healthy], [docker, prisma7].
    # lab-partial stops at the plan (partial evidence): 1 of 3 is over 20 %, so Ansible ends the batch right
    # after that task, before any host of it wrote anything, and no later batch starts.
    first = recover(tmp_path, "-e", '{"recover_serial": 3, "recover_max_fail_percentage": 20}')
    assert first.returncode != 0
    assert first.stdout.count("PLAY [Recover failed Prisma migrations]") == 1, first.stdout[-3000:]
    assert "PLAY [Fleet summary]" not in first.stdout  # Ansible ends the run when a batch breaks the threshold
    assert {name: lab_history(host) for name, host in lab.items()} == before

    run(["docker", "stop", "-t", "5", "lab-healthy"], timeout=120)
    try:
        second = recover(tmp_path, "-e", '{"recover_serial": 3, "recover_fail_on_stop": false}')
    finally:
        assert run([str(LAB_SH), "up"], timeout=600).returncode == 0  # starts lab-healthy again
    output = second.stdout + second.stderr
    flat = " ".join(output.split())  # the yaml callback folds long lines
    assert second.returncode != 0, output[-3000:]
    assert second.stdout.count("PLAY [Recover failed Prisma migrations]") == 3
    assert "FLEET: 8 host(s): 5 recovered, 0 already in sync, 2 stopped for review, 0 failed, 1 unreachable" in flat, \
        output[-4000:]
    assert "lab-healthy: unreachable" in flat
    assert "lab-healthy could not be reached, so nothing was done there" in flat
    for name in ("lab-applied", "lab-notapplied", "lab-pending", "lab-docker", "lab-prisma7"):
        rows = lab_history(lab[name])
        failed = [r for r in rows if r[1] == "f" and r[2] == "f"]
        applied = {r[0] for r in rows if r[1] == "t" and r[2] == "f"}
        assert not failed and len(applied) == 4, (name, rows)
    for name in ("lab-partial", "lab-byhand"):
        assert [r[0] for r in lab_history(lab[name]) if r[1] == "f" and r[2] == "f"] == [lab[name]["lab_failed_migration"]]
    report = json.loads((tmp_path / "reports" / "lab-partial.json").read_text())
    assert report["status"] == "stopped"


MOLECULE_ACTIONS = ("create", "prepare", "check", "side_effect", "converge", "verify", "idempotence", "destroy")


def test_molecule_scenario_over_the_lab():
    """molecule/default: check mode changes nothing, converge, verify (psql, a real restore), idempotence."""
    # Molecule runs ansible-config and ansible-playbook from PATH: the project venv's.
    env = dict(os.environ, NO_COLOR="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0",
               PATH="%s:%s" % (REPO / ".venv" / "bin", os.environ.get("PATH", "")))
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "molecule"), "test"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=2400, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, output[-8000:]
    # Every step ran and passed (idempotence's own check: the second converge changed nothing on any host).
    recap = re.search(r"^default\s*:\s*actions=(\d+)\s+successful=(\d+)\s+disabled=0\s+skipped=0\s+missing=0\s+"
                      r"failed=0\s*$", output, re.M)
    assert recap and recap.group(1) == recap.group(2) == str(len(MOLECULE_ACTIONS)), output[-8000:]
    # recover.yml ran three times: --check, converge, idempotence; and verify ran its checks per host.
    assert output.count("PLAY [Recover failed Prisma migrations]") == 3, output[-8000:]
    assert "PLAY [Verify]" in output and "PLAY [Side effect | Check mode changed nothing]" in output
