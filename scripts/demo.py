#!/usr/bin/env python
"""make demo: a real P3009 recovered by playbooks/recover.yml on this machine.

A throwaway PostgreSQL 15 cluster, a real Prisma project driven by the real Prisma CLI (6.19.3,
offline), a real failed `prisma migrate deploy` that leaves deploy blocked with P3009, then the
recover role over `ansible_connection: local`: evidence, plan, backup, resolve, deploy, verify,
report. The cluster and the temporary files are removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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


def main() -> int:
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
