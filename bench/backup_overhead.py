#!/usr/bin/env python
"""pg_backup (verified, fsynced, manifest) vs plain `pg_dump -Fc` to a file, on a database of at least 500 MB.

Both run end to end as processes, rounds alternating (and the order flipping each round) so machine noise
hits both alike: pg_backup through the same runner the tests use (a real AnsibleModule with its arguments on
stdin, connection, manifest rows, pg_dump, pg_restore --list, sha256, fsync, rename), pg_dump with PGPASSWORD
writing to a file in the same directory. Prints each median and the ratio. Target: overhead at most 10%.

    .venv/bin/python bench/backup_overhead.py [--size-mb 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections")]

from tests.harness.modules import run_module  # noqa: E402
from tests.harness.pgcluster import running_cluster  # noqa: E402
from tests.harness.timing import timed  # noqa: E402

PG_DUMP = "/usr/lib/postgresql/15/bin/pg_dump"
ROW_BYTES = 470  # about what one row below takes on disk


def build(db, size_mb: int) -> int:
    """Wide rows of varied text (md5s of different inputs: about as compressible as real text columns)."""
    rows = size_mb * 1024 * 1024 // ROW_BYTES
    db.execute("CREATE TABLE wide (id BIGINT PRIMARY KEY, email TEXT, a TEXT, b TEXT, meta JSONB, at TIMESTAMPTZ)")
    step = 200000
    for start in range(1, rows + 1, step):
        db.execute(
            "INSERT INTO wide SELECT i, 'user' || i || '@example.com', "
            "md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text) || md5((i + 3)::text), "
            "md5((i * 7)::text) || md5((i * 11)::text) || md5((i * 13)::text) || md5((i * 17)::text) || "
            "md5((i * 19)::text) || md5((i * 23)::text) || md5((i * 29)::text), "
            "jsonb_build_object('n', i, 'tag', 't' || mod(i, 97)), timestamptz '2025-01-01' + i * interval '1 second' "
            "FROM generate_series(%s, %s) i", (start, min(start + step - 1, rows)))
    db.execute("VACUUM ANALYZE wide")
    return db.execute("SELECT pg_database_size(current_database())")[0][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prisma-ops-bench-"))
    try:
        with running_cluster() as cluster:
            db = cluster.create_database()
            seconds, size = timed(lambda: build(db, args.size_mb))
            print("database: %.0f MB (built in %.0f s)" % (size / 1024 / 1024, seconds))
            if size < 500 * 1024 * 1024 and args.size_mb >= 500:
                print("the database is smaller than 500 MB: raise --size-mb")
                return 1
            env = dict(os.environ, PGPASSWORD=db.owner.password)
            baseline_file = work / "baseline.dump"

            def module_run() -> float:
                backup_dir = work / "backups"
                params = {"database_url": db.url(), "backup_dir": str(backup_dir)}
                seconds, result = timed(lambda: run_module("pg_backup", params, timeout=1800))
                assert result.get("changed") is True and result["verification"]["toc_entries"] > 0, result.get("msg")
                sizes.setdefault("module", result["size"])
                manifest = json.loads(Path(result["manifest"]).read_text())
                # Noise-robust: what pg_backup spends outside pg_dump itself (process, connection, verify, hash, fsync).
                extra_times.append(seconds - manifest["dump_seconds"])
                shutil.rmtree(backup_dir)
                return seconds

            def baseline_run() -> float:
                argv = [PG_DUMP, "-Fc", "-f", str(baseline_file), "-h", "127.0.0.1", "-p", str(cluster.port),
                        "-U", db.owner.name, "-d", db.name, "--no-password"]
                seconds, proc = timed(lambda: subprocess.run(argv, env=env, capture_output=True, text=True,
                                                             check=False, timeout=1800))
                assert proc.returncode == 0, proc.stderr
                sizes.setdefault("baseline", baseline_file.stat().st_size)
                baseline_file.unlink()
                return seconds

            sizes: dict = {}
            module_times, baseline_times, extra_times = [], [], []
            for index in range(args.rounds):
                order = (module_run, baseline_run) if index % 2 == 0 else (baseline_run, module_run)
                for run in order:
                    (module_times if run is module_run else baseline_times).append(run())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    module_median, baseline_median = statistics.median(module_times), statistics.median(baseline_times)
    ratio = module_median / baseline_median
    print("dump size: pg_backup %.0f MB, pg_dump -Fc %.0f MB; %d rounds, alternating"
          % (sizes["module"] / 1024 / 1024, sizes["baseline"] / 1024 / 1024, args.rounds))
    print("pg_backup (verified):  median %.2f s (runs: %s)" % (module_median, ", ".join("%.2f" % t for t in module_times)))
    print("pg_dump -Fc to a file: median %.2f s (runs: %s)" % (baseline_median,
                                                               ", ".join("%.2f" % t for t in baseline_times)))
    extra = statistics.median(extra_times)
    print("pg_backup outside pg_dump (start-up, connection, manifest rows, verify, sha256, fsync, rename): median "
          "%.2f s = %.1f%% of pg_dump's median" % (extra, 100 * extra / baseline_median))
    print("ratio (pg_backup / pg_dump): %.3f, overhead %+.1f%%; target <= 10%%: %s"
          % (ratio, (ratio - 1) * 100, "met" if ratio <= 1.10 else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
