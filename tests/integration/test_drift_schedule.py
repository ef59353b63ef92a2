"""roles/drift_check_schedule rendered into a temporary root: the systemd service and timer (verified by
systemd-analyze), the cron alternative, switching between them, idempotence, and the rendered command itself run
against a real host, rotating the report directory."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.prisma import PrismaProject
from tests.harness.scenario import INIT, add, write_env_file

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def apply_role(tmp_path: Path, root: Path, **role_vars) -> subprocess.CompletedProcess:
    play = [{"name": "Install the drift check schedule", "hosts": "localhost", "gather_facts": False,
             "vars": {"ansible_python_interpreter": sys.executable, "drift_check_schedule_root": str(root),
                      **role_vars},
             "roles": [{"role": "prisma_ops.migrate.drift_check_schedule"}]}]
    playbook = tmp_path / "schedule.yml"
    playbook.write_text(json.dumps(play))
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook)], cwd=REPO,
                          capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1"})


def changed(proc) -> int:
    match = re.search(r"^localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return int(match.group(1))


def test_systemd_units_then_cron_instead(tmp_path):
    root = tmp_path / "root"
    settings = {"drift_check_schedule_ansible_playbook": ANSIBLE_PLAYBOOK, "drift_check_schedule_user": "root",
                "drift_check_schedule_inventory": "/etc/prisma_ops/fleet inventory.yml",
                "drift_check_schedule_extra_args": ["--vault-password-file", "/etc/prisma_ops/vault-pass", "-e",
                                                    "drift_check_report_title='Nightly 100%'"],
                "drift_check_schedule_environment": {"ANSIBLE_CONFIG": "/etc/prisma_ops/ansible.cfg"}}
    proc = apply_role(tmp_path, root, **settings)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    units = root / "etc" / "systemd" / "system"
    service = (units / "prisma-drift-check.service").read_text()
    timer = (units / "prisma-drift-check.timer").read_text()
    assert "Type=oneshot" in service and "User=root" in service
    assert 'Environment="ANSIBLE_CONFIG=/etc/prisma_ops/ansible.cfg"' in service
    exec_start = re.search(r"^ExecStart=(.*)$", service, re.M).group(1)
    # systemd unescapes %% to %; after that the line splits like a shell line.
    assert shlex.split(exec_start.replace("%%", "%")) == [
        ANSIBLE_PLAYBOOK, "-i", "/etc/prisma_ops/fleet inventory.yml", "prisma_ops.migrate.drift_check",
        "-e", "@/etc/prisma_ops/prisma-drift-check.json", "--vault-password-file", "/etc/prisma_ops/vault-pass",
        "-e", "drift_check_report_title='Nightly 100%'"]
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Persistent=true" in timer and "WantedBy=timers.target" in timer
    assert json.loads((root / "etc" / "prisma_ops" / "prisma-drift-check.json").read_text()) == {
        "drift_check_report_dir": "/var/lib/prisma_ops/drift", "drift_check_report_keep": 14}
    assert (root / "var" / "lib" / "prisma_ops" / "drift").is_dir()
    assert not (root / "etc" / "cron.d" / "prisma-drift-check").exists()

    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of systemd, on every Debian machine"
    verify = subprocess.run([analyze, "verify", str(units / "prisma-drift-check.service"),
                             str(units / "prisma-drift-check.timer")], capture_output=True, text=True, timeout=60,
                            check=False)
    # Only our units are judged: messages about the machine's own units are not ours to fix.
    ours = [line for line in (verify.stdout + verify.stderr).splitlines() if "prisma-drift-check" in line]
    assert ours == [], verify.stdout + verify.stderr

    again = apply_role(tmp_path, root, **settings)
    assert changed(again) == 0, again.stdout

    cron = apply_role(tmp_path, root, drift_check_schedule_method="cron", **settings)
    assert cron.returncode == 0, cron.stdout + cron.stderr
    line = (root / "etc" / "cron.d" / "prisma-drift-check").read_text()
    job = [entry for entry in line.splitlines() if entry.startswith("30 2 * * * root ")]
    assert len(job) == 1
    assert "flock -n /run/lock/prisma-drift-check.lock" in job[0]
    assert "Nightly 100\\%" in job[0] and "100%" not in job[0].replace("100\\%", "")  # cron reads % as a newline
    assert "ANSIBLE_CONFIG=/etc/prisma_ops/ansible.cfg" in line
    assert not (units / "prisma-drift-check.service").exists() and not (units / "prisma-drift-check.timer").exists()


def test_the_scheduled_command_runs_and_rotates_the_reports(pg_cluster, db, tmp_path):
    project = PrismaProject.create(tmp_path / "app", db.url())
    write_env_file(project)
    add(project, INIT)
    assert project.deploy().returncode == 0
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"app1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "host_venv_manage": False,
        "drift_check_project_dir": str(project.root)}}}}))
    root = tmp_path / "root"
    reports = tmp_path / "reports"
    proc = apply_role(tmp_path, root, drift_check_schedule_ansible_playbook=ANSIBLE_PLAYBOOK,
                      drift_check_schedule_inventory=str(inventory), drift_check_schedule_report_dir=str(reports),
                      drift_check_schedule_report_keep=2, drift_check_schedule_playbook="playbooks/drift_check.yml",
                      drift_check_schedule_workdir=str(REPO))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    service = (root / "etc" / "systemd" / "system" / "prisma-drift-check.service").read_text()
    argv = shlex.split(re.search(r"^ExecStart=(.*)$", service, re.M).group(1).replace("%%", "%"))
    # The vars file was rendered under the temporary root, not in /etc.
    argv = [a.replace("@/etc/prisma_ops/", "@%s/etc/prisma_ops/" % root) for a in argv]
    old = ["20200101T000000Z", "20200102T000000Z"]
    for name in old:
        (reports / name).mkdir(parents=True)
    run = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    runs = sorted(p.name for p in reports.iterdir() if p.name != "latest")
    assert len(runs) == 2 and runs[0] == old[1] and runs[1] > old[1]  # the oldest went, the newest is this run
    latest = json.loads((reports / "latest" / "fleet.json").read_text())
    assert [h["host"] for h in latest["hosts"]] == ["app1"] and latest["hosts"][0]["status"] in ("ok", "not_checked")
