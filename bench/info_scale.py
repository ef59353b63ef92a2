#!/usr/bin/env python
"""prisma_migration_info at scale vs `prisma migrate status`, on the same data, in the same run.

5,000 history rows and 5,000 migration folders (rows written exactly as deploy writes them).
Prints each tool's median wall time over several rounds and their ratio. Targets: the module
under 1 s, and at least 3x faster than the CLI.

    .venv/bin/python bench/info_scale.py [--migrations 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections")]

from tests.harness.modules import run_module  # noqa: E402
from tests.harness.pgcluster import running_cluster  # noqa: E402
from tests.harness.timing import timed  # noqa: E402
from tests.harness.prisma import PrismaProject  # noqa: E402
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import script_checksum  # noqa: E402


def build(project: PrismaProject, db, count: int) -> None:
    rows = []
    for i in range(count):
        name = "2025%010d_step_%d" % (i, i)
        script = 'CREATE TABLE "t_%d" ("id" INTEGER);\n' % i
        project.add_migration(name, script)
        rows.append((str(uuid.uuid4()), script_checksum(script), name))
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("""CREATE TABLE _prisma_migrations (
            id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ,
            migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ,
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)""")
        cur.executemany("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, "
                        "applied_steps_count) VALUES (%s, %s, %s, clock_timestamp(), clock_timestamp(), 1)", rows)
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrations", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with running_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        db = cluster.create_database()
        project = PrismaProject.create(Path(tmp) / "app", db.url())
        build(project, db, args.migrations)
        module_times, cli_times = [], []
        for _round in range(args.rounds):  # alternate so machine noise hits both alike
            seconds, result = timed(lambda: run_module("prisma_migration_info", {
                "database_url": db.url(), "migrations_dir": str(project.migrations_dir)}))
            assert result.get("in_sync") is True and result["counts"]["applied"] == args.migrations, result.get("msg")
            module_times.append(seconds)
            seconds, status = timed(project.status)
            assert status.returncode == 0 and "up to date" in status.stdout, status.output[-500:]
            cli_times.append(seconds)
    module_median, cli_median = statistics.median(module_times), statistics.median(cli_times)
    print("migrations: %d folders, %d history rows, %d rounds" % (args.migrations, args.migrations, args.rounds))
    print("prisma_migration_info: median %.3f s (runs: %s)" % (module_median, ", ".join("%.3f" % t for t in module_times)))
    print("prisma migrate status: median %.3f s (runs: %s)" % (cli_median, ", ".join("%.3f" % t for t in cli_times)))
    print("ratio (status / module): %.1fx; target >= 3x; module target < 1 s: %s"
          % (cli_median / module_median, "met" if module_median < 1 else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
