#!/usr/bin/env python
"""drift_check.yml over the lab's SSH hosts vs `prisma migrate status` over SSH on each host in turn.

The lab (docs/lab.md) must be up: `make lab` (and `scripts/lab.sh up faults` for more hosts; every
host of lab/inventory.yml and, when present, lab/inventory_faults.yml is used, at least 8). Three
measurements, alternating in rounds so machine noise hits all alike:
  - baseline: what an operator does today, one host after the other: ssh in, run the real
    `npx prisma migrate status` as the app user in the app directory (in the app's container on
    containerised hosts);
  - drift_check: `ansible-playbook playbooks/drift_check.yml` over all of them at once (history,
    schema replay where a scratch database is reachable, lock, backup age; the reports written);
  - ping: a bare `ansible all -m ansible.builtin.ping` round over the same hosts and forks.
Prints each median, drift_check's speed-up over the baseline (target: at least 3x) and its per-host
cost against the ping round's (target: within 2x).

    .venv/bin/python bench/fleet_check.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from tests.harness.timing import timed  # noqa: E402

BIN = Path(sys.executable).parent
INVENTORIES = [REPO / "lab" / "inventory.yml", REPO / "lab" / "inventory_faults.yml"]
BACKEND = "/opt/schooliat/repo/Backend"


def hosts(inventories: list) -> list:
    """Every host of the inventories with its group vars merged in."""
    found = []
    for path in inventories:
        for group in yaml.safe_load(path.read_text()).values():
            for name, host_vars in (group.get("hosts") or {}).items():
                found.append(dict(group.get("vars") or {}, **(host_vars or {}), name=name))
    return found


def ssh_status(host: dict) -> None:
    """What an operator types per host: the real CLI's status, over SSH, as the app user."""
    if host.get("lab_app_container"):
        command = "docker exec -u app -w %s %s npx prisma migrate status" % (BACKEND, host["lab_app_container"])
    else:
        command = "runuser -l app -c 'cd %s && npx prisma migrate status'" % BACKEND
    argv = ["ssh", "-i", host["ansible_ssh_private_key_file"], "-p", str(host["ansible_port"]), "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "root@%s" % host["ansible_host"], command]
    # status exits 1 for any host not in sync: that is an answer, not a failure of the measurement.
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if "migration" not in proc.stdout + proc.stderr:
        raise RuntimeError("prisma migrate status on %s gave no answer: %s" % (host["name"], proc.stderr[-500:]))


def ansible(argv: list, allowed: tuple = (0,)) -> None:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="False")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900, check=False, env=env)
    if proc.returncode not in allowed:
        raise RuntimeError("%s exited %d:\n%s" % (" ".join(argv[:4]), proc.returncode, (proc.stdout + proc.stderr)[-3000:]))


def checked(reports: str, fleet: list) -> None:
    """A fast run that checked nothing measures nothing: every host must have been checked (up, no error)."""
    data = json.loads(Path(reports, "fleet.json").read_text())
    records = {r["host"]: r for r in data["hosts"]}
    missing = sorted({h["name"] for h in fleet} - set(records))
    down = sorted(name for name, r in records.items() if r["metrics"]["up"] != 1)
    if missing or down:
        raise RuntimeError("drift_check did not check every host: missing %s, not checked %s (%s)" % (
            missing, down, "; ".join(records[name]["summary"] for name in down)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    inventories = [p for p in INVENTORIES if p.exists()]
    if not inventories:
        print("the lab is not up: run `make lab` (and `scripts/lab.sh up faults`)", file=sys.stderr)
        return 2
    fleet = hosts(inventories)
    if len(fleet) < 8:
        print("only %d lab hosts: bring up the fault hosts too (`scripts/lab.sh up faults`)" % len(fleet),
              file=sys.stderr)
        return 2
    status = subprocess.run([str(REPO / "scripts" / "lab.sh"), "status", "all"], capture_output=True, text=True,
                            timeout=300, check=False)
    if status.returncode != 0:
        print("some lab hosts do not answer over SSH: run `scripts/lab.sh up all`\n" + status.stdout + status.stderr,
              file=sys.stderr)
        return 2
    inventory_args = [a for p in inventories for a in ("-i", str(p))]
    forks = ["--forks", str(len(fleet))]
    reports = tempfile.mkdtemp(prefix="fleet-bench-")
    # Hosts in drift are the point of a drift check: its exit code 2 is an answer here.
    drift = [str(BIN / "ansible-playbook"), *inventory_args, *forks, "playbooks/drift_check.yml",
             "-e", "drift_check_report_dir=%s" % reports]
    ping = [str(BIN / "ansible"), "all", *inventory_args, *forks, "-m", "ansible.builtin.ping"]

    def drift_check() -> None:
        ansible(drift, allowed=(0, 2))
        checked(reports, fleet)

    print("hosts: %d (%s)" % (len(fleet), ", ".join(h["name"] for h in fleet)))
    print("warm-up: one drift_check run (builds the modules' virtualenv on hosts that lack it), one ping round")
    drift_check()
    ansible(ping)

    baseline, checks, pings = [], [], []
    for round_no in range(args.rounds):
        steps = [("baseline", lambda: [ssh_status(h) for h in fleet], baseline),
                 ("drift_check", drift_check, checks),
                 ("ping", lambda: ansible(ping), pings)]
        for label, fn, sink in (steps if round_no % 2 == 0 else list(reversed(steps))):
            seconds = timed(fn)[0]
            sink.append(seconds)
            print("round %d %-12s %6.2f s" % (round_no + 1, label, seconds), flush=True)

    b, d, p = statistics.median(baseline), statistics.median(checks), statistics.median(pings)
    n = len(fleet)
    print()
    print("median over %d rounds, %d hosts:" % (args.rounds, n))
    print("  prisma migrate status over SSH, host by host : %6.2f s (%.2f s a host)" % (b, b / n))
    print("  drift_check.yml over all hosts               : %6.2f s (%.2f s a host)" % (d, d / n))
    print("  ansible -m ping over all hosts               : %6.2f s (%.2f s a host)" % (p, p / n))
    print("speed-up of drift_check over the baseline: %.2fx (target >= 3x)" % (b / d))
    print("drift_check per-host cost / ping round per-host cost: %.2fx (target <= 2x)" % (d / p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
