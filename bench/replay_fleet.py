#!/usr/bin/env python
"""The schema replay of drift_check.yml over 1 and over N hosts that share one migrations folder.

Hosts are local (ansible_connection=local), one database each on one throwaway cluster, every one holding the
evidence corpus applied (tests/evidence_corpus) with its history rows, and the same folder. Three measurements,
alternating in rounds so machine noise hits all alike:
  - one: 1 host, app role without CREATEDB: its replay runs on the controller (a fresh cache each round);
  - fleet: N hosts, the same, at the default forks: the folder is replayed once for all of them (the cache);
  - each-host: N hosts whose role has CREATEDB: each replays in a temporary database of its own (what every host
    paid before the controller replay; the baseline).
Prints each median, the per-host cost of `fleet` against `one` (the replay paid once: the ratio falls well below 1)
and against `each-host`, and how many replays the fleet run made (the cache entries: 1).

    .venv/bin/python bench/replay_fleet.py [--hosts 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
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

from tests.harness.pgcluster import running_cluster  # noqa: E402
from tests.harness.timing import timed  # noqa: E402

CORPUS = REPO / "tests" / "evidence_corpus"
HISTORY = """
CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)
"""


def folder(root: Path) -> list:
    """The corpus as one app's migrations folder; returns [(name, text)]."""
    migrations = root / "prisma" / "migrations"
    migrations.mkdir(parents=True)
    (migrations / "migration_lock.toml").write_text('provider = "postgresql"\n')
    scripts = []
    for path in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        shutil.copytree(path, migrations / path.name)
        scripts.append((path.name, (path / "migration.sql").read_text()))
    return scripts


def host_database(cluster, scripts: list, createdb: bool):
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import apply_script
    role = cluster.create_role("bench_%s" % os.urandom(4).hex(), createdb=createdb)
    db = cluster.create_database(owner=role)
    conn = db.connect()
    try:
        for name, text in scripts:
            apply_script(conn, text)
        with conn.cursor() as cur:
            cur.execute(HISTORY)
            for index, (name, text) in enumerate(scripts):
                cur.execute("INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, "
                            "applied_steps_count) VALUES (%s, %s, now(), %s, 1)",
                            ("m%d" % index, hashlib.sha256(text.encode()).hexdigest(), name))
    finally:
        conn.close()
    return db


def inventory(work: Path, dbs: list, app: Path) -> Path:
    hosts = {}
    for index, db in enumerate(dbs):
        project = work / ("app%d" % index)
        project.mkdir()
        (project / "prisma").symlink_to(app / "prisma")
        (project / ".env").write_text('DATABASE_URL="%s"\n' % db.url())
        hosts["host%02d" % index] = {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "host_venv_manage": False,
            "drift_check_project_dir": str(project), "drift_check_report_dir": str(work / "reports"),
            "drift_check_checks": ["history", "schema"]}
    path = work / "inventory.json"
    path.write_text(json.dumps({"fleet": {"hosts": hosts}}))
    return path


def drift_check(inv: Path, cache: Path) -> float:
    shutil.rmtree(cache, ignore_errors=True)
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), "playbooks/drift_check.yml"]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", PRISMA_OPS_REPLAY_CACHE=str(cache))
    elapsed, proc = timed(lambda: subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, timeout=3600,
                                                 check=False))
    if proc.returncode != 0:
        raise SystemExit("drift_check.yml failed:\n%s" % (proc.stdout[-3000:] + proc.stderr[-2000:]))
    fleet = json.loads((inv.parent / "reports" / "fleet.json").read_text())
    where = {h["checks"]["schema"].get("database") for h in fleet["hosts"]}
    checked = {h["checks"]["schema"].get("checked") for h in fleet["hosts"]}
    if checked != {True}:
        raise SystemExit("a host's schema was not checked: %s" % fleet["hosts"])
    print("    %-28s %6.1f s  (replayed in: %s)" % (inv.parent.name, elapsed, ", ".join(sorted(map(str, where)))))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prisma-ops-bench-replay-"))
    try:
        with running_cluster() as cluster:
            scripts = folder(work / "app")
            runs = {}
            for label, count, createdb in (("one", 1, False), ("fleet", args.hosts, False),
                                           ("each-host", args.hosts, True)):
                (work / label).mkdir()
                dbs = [host_database(cluster, scripts, createdb) for _host in range(count)]
                runs[label] = (inventory(work / label, dbs, work / "app"), count)
            times = {label: [] for label in runs}
            caches = {}
            for round_no in range(1, args.rounds + 1):
                print("round %d" % round_no)
                for label, (inv, _count) in runs.items():
                    caches[label] = work / ("cache-" + label)
                    times[label].append(drift_check(inv, caches[label]))
            replays = len(list(caches["fleet"].glob("*.json")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {label: statistics.median(values) for label, values in times.items()}
    per_host = {label: median[label] / runs[label][1] for label in runs}
    print()
    for label in runs:
        print("%-10s %3d host(s): median %6.1f s, %5.2f s per host" % (label, runs[label][1], median[label],
                                                                       per_host[label]))
    print("replays made by the %d-host controller run: %d (the folder, once)" % (args.hosts, replays))
    print("per-host cost, %d hosts replayed once on the controller / 1 host: %.2fx"
          % (args.hosts, per_host["fleet"] / per_host["one"]))
    print("per-host cost, replayed once on the controller / each host replaying itself: %.2fx"
          % (per_host["fleet"] / per_host["each-host"]))


if __name__ == "__main__":
    main()
