#!/usr/bin/env python
"""make demo: real P3009s recovered by playbooks/recover.yml over the lab of SSH hosts.

The lab (docs/lab.md): eight hosts in containers reached over real SSH on 127.0.0.1, each with its
own PostgreSQL, a real Prisma project and one failure scenario, made by the real Prisma CLI
(6.19.3 offline; lab-prisma7 runs 7.10.1 with its config, schema and migrations under db/, which
recover.yml finds by itself). The demo shows the real CLI refusing with P3009, runs recover.yml over the
whole lab (evidence, plan, backup, resolve, deploy, verify, report, fleet summary), then shows the
real CLI's `migrate status` on a recovered host. The lab keeps running (`make lab-down` removes it).

When Docker cannot run here, it falls back to one local host (`ansible_connection: local`): a
throwaway PostgreSQL 15 cluster and a real Prisma project, recovered the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections")]

from tests.harness.pgcluster import running_cluster  # noqa: E402
from tests.harness.prisma import PrismaProject  # noqa: E402
from tests.harness.scenario import local_inventory, make_p3009, write_env_file  # noqa: E402


def say(text: str) -> None:
    print("\n\033[1m== %s\033[0m" % text if sys.stdout.isatty() else "\n== %s" % text, flush=True)


def excerpt(output: str) -> str:
    """The CLI's error, without its schema-loading preamble."""
    lines = output.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Error")), max(len(lines) - 6, 0))
    return "\n".join("  " + line for line in lines[start:start + 6])


LAB_SH = REPO / "scripts" / "lab.sh"
INVENTORY = REPO / "lab" / "inventory.yml"
BACKEND = "/opt/schooliat/repo/Backend"
SHOWCASE = "lab-notapplied"  # the host whose P3009 and recovery the demo shows with the real CLI
PRISMA7 = "lab-prisma7"  # the Prisma 7 project in its own layout, shown after the run too


def lab_ssh(host: dict, command: str) -> subprocess.CompletedProcess:
    argv = ["ssh", "-i", host["ansible_ssh_private_key_file"], "-p", str(host["ansible_port"]), "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "root@127.0.0.1", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def lab_host(name: str) -> dict:
    group = yaml.safe_load(INVENTORY.read_text())["lab"]
    return dict(group["vars"], **group["hosts"][name])


def cli_deploy(host: dict) -> subprocess.CompletedProcess:
    return lab_ssh(host, "runuser -l app -c 'cd %s && npx prisma migrate deploy'" % BACKEND)


def lab_demo() -> int:
    host = lab_host(SHOWCASE)
    blocked = cli_deploy(host)
    if "P3009" not in blocked.stdout + blocked.stderr:
        say("The lab was recovered by an earlier run: building every scenario again (scripts/lab.sh reset)")
        if subprocess.run([str(LAB_SH), "reset"], check=False).returncode != 0:
            return 1
        blocked = cli_deploy(host)
    say("%s: the real `npx prisma migrate deploy`, as the app user, over SSH, refuses" % SHOWCASE)
    print(excerpt(blocked.stdout + blocked.stderr))
    count = len(yaml.safe_load(INVENTORY.read_text())["lab"]["hosts"])
    say("ansible-playbook -i lab/inventory.yml playbooks/recover.yml (%d hosts, real SSH)" % count)
    print("  hosts stopped for review do not fail the run here (recover_fail_on_stop=false); by default they do")
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY),
                           "playbooks/recover.yml", "-e", '{"recover_fail_on_stop": false}'], cwd=REPO, env=env,
                          check=False)
    if proc.returncode != 0:
        print("\nrecover.yml failed (exit %d)" % proc.returncode)
        return proc.returncode
    say("%s after: the real `npx prisma migrate status` and `migrate deploy`" % SHOWCASE)
    status = lab_ssh(host, "runuser -l app -c 'cd %s && npx prisma migrate status; npx prisma migrate deploy'"
                     % BACKEND)
    wanted = [line for line in status.stdout.splitlines()
              if "migrations found" in line or "up to date" in line or "No pending" in line or line.startswith("Error")]
    print("\n".join("  " + line for line in wanted))
    ok = any("up to date" in line for line in wanted)
    seven = lab_host(PRISMA7)
    say("%s after (Prisma 7.10.1, prisma.config.ts naming db/schema.prisma): `npx prisma migrate status`" % PRISMA7)
    status7 = lab_ssh(seven, "runuser -l app -c 'cd %s && npx prisma --version | grep ^prisma; npx prisma migrate "
                             "status'" % BACKEND)
    wanted7 = [line for line in status7.stdout.splitlines()
               if line.startswith(("prisma ", "Datasource")) or "migrations found" in line or "up to date" in line
               or line.startswith("Error")]
    print("\n".join("  " + line for line in wanted7))
    ok = ok and status7.returncode == 0 and any("up to date" in line for line in wanted7)
    say("Per-host JSON reports: ~/.prisma_ops/reports/; the lab keeps running (make lab-down removes it)")
    return 0 if ok else 1


def main() -> int:
    up = subprocess.run([str(LAB_SH), "up"], check=False)
    if up.returncode == 0:
        return lab_demo()
    say("The lab cannot run here (see the message above): one local host instead")
    return local_demo()


def local_demo() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="prisma-ops-demo-"))
    try:
        with running_cluster() as cluster:
            db = cluster.create_database("schooliat")
            project = PrismaProject.create(workdir / "app", db.url())
            write_env_file(project)
            say("A real Prisma project on a throwaway PostgreSQL (port %d); deploy fails, then P3009" % cluster.port)
            outputs = make_p3009(project, db, "not_applied")
            print(excerpt(outputs["failed"]))
            say("The next `prisma migrate deploy` refuses")
            print(excerpt(outputs["blocked"]))
            inv = local_inventory(workdir, project, db.name, sys.executable)
            say("ansible-playbook playbooks/recover.yml (ansible_connection=local)")
            env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
            proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), "playbooks/recover.yml"], cwd=REPO, env=env,
                                  check=False)
            if proc.returncode != 0:
                print("\nrecover.yml failed (exit %d)" % proc.returncode)
                return proc.returncode
            say("After: `prisma migrate status` (the real CLI) and _prisma_migrations (read with psycopg2)")
            status = project.status()
            wanted = [line for line in status.output.strip().splitlines()
                      if "migrations found" in line or "up to date" in line or line.startswith("Error")]
            print("\n".join("  " + line for line in wanted))
            for row in db.execute("SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL "
                                  "FROM _prisma_migrations ORDER BY started_at"):
                print("  %-32s finished=%s rolled_back=%s" % row)
            report = next((workdir / "reports").glob("*.json"))
            result = json.loads(report.read_text())
            say("Report %s: status %s, backup %s" % (report.name, result["status"], result["backup_path"]))
            return 0 if status.returncode == 0 and result["status"] == "recovered" else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
