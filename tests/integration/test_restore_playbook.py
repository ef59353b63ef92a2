"""playbooks/restore.yml end to end on one local host (ansible_connection=local), real PostgreSQL, real Prisma CLI.

A real `prisma migrate deploy` makes the history; pg_backup takes the backup; a later real deploy changes the
database; then the playbook restores as an operator would. What the database holds is read with psycopg2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.modules import run_module
from tests.harness.scenario import GUARDIANS, INIT, add, write_env_file

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HOST = "restore-host"


def rows(db) -> list:
    return db.execute("SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at, logs, "
                      "applied_steps_count FROM _prisma_migrations ORDER BY started_at, id")


def tables(db) -> list:
    return [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def playbook(inventory: Path, *args: str) -> subprocess.CompletedProcess:
    # With -l HOST, as the runbook and the playbook's header say: the summary must survive the limit.
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), "playbooks/restore.yml",
            "-l", HOST, *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json"))


def recap(proc) -> dict:
    match = re.search(r"^%s\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(HOST),
                      proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


@pytest.fixture
def host(project, db, tmp_path):
    """The app at INIT backed up, then GUARDIANS deployed for real: the backup is one migration behind."""
    env_file = write_env_file(project)
    add(project, INIT)
    assert project.deploy().returncode == 0
    project_rows, project_tables = rows(db), tables(db)
    taken = run_module("pg_backup", {"env_file": str(env_file), "backup_dir": str(tmp_path / "backups")})
    assert taken.get("failed") is not True, taken
    add(project, GUARDIANS)
    deployed = project.deploy()
    assert deployed.returncode == 0, deployed.output
    assert tables(db) != project_tables

    def _inventory(**overrides) -> Path:
        hostvars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "host_venv_manage": False,  # the modules run with this Python; one test builds the venv
                    "restore_env_file": str(env_file), "restore_backup_dir": str(tmp_path / "backups"),
                    "restore_stop_command": ["touch", str(tmp_path / "stopped")],
                    "restore_start_command": ["touch", str(tmp_path / "started")]}
        hostvars.update(overrides)
        path = tmp_path / "inventory.json"
        path.write_text(json.dumps({"local": {"hosts": {HOST: hostvars}}}))
        return path
    return {"inventory": _inventory, "backup": taken, "rows": project_rows, "tables": project_tables}


def backups(tmp_path, prefix: str) -> list:
    return sorted(n for n in os.listdir(tmp_path / "backups") if n.startswith(prefix + "-") and n.endswith(".dump"))


def test_check_mode_then_refusals_then_the_restore_then_undo(db, host, tmp_path):
    inventory = host["inventory"]()
    after_deploy, after_tables = rows(db), tables(db)

    checked = playbook(inventory, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "RESTORE PLAN for %s: %s into database %s" % (HOST, host["backup"]["path"], db.name) in checked.stdout
    assert "a real run needs confirm=%s" % db.name in checked.stdout
    assert rows(db) == after_deploy and backups(tmp_path, "pre-restore") == []
    assert not (tmp_path / "stopped").exists()

    for extra in ([], ["-e", "restore_confirm=production"]):
        refused = playbook(inventory, *extra)
        assert refused.returncode != 0 and recap(refused)["failed"] == 1
        assert "Pass -e restore_confirm=%s to go ahead" % db.name in refused.stdout
        assert rows(db) == after_deploy and backups(tmp_path, "pre-restore") == []
        assert not (tmp_path / "stopped").exists()

    done = playbook(inventory, "-e", "restore_confirm=%s" % db.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(db) == host["rows"] and tables(db) == host["tables"]
    assert (tmp_path / "stopped").exists() and (tmp_path / "started").exists()
    pre = backups(tmp_path, "pre-restore")
    assert len(pre) == 1
    assert "%s: restored %s into %s | history matches: True | undo: %s" % (
        HOST, host["backup"]["path"], db.name, tmp_path / "backups" / pre[0]) in done.stdout
    assert db.owner.password not in done.stdout + done.stderr + checked.stdout

    # Undo: the pre-restore backup brings GUARDIANS back.
    undo = playbook(inventory, "-e", "restore_confirm=%s" % db.name,
                    "-e", "restore_backup_path=%s" % (tmp_path / "backups" / pre[0]), "-e", "restore_pre_backup=false")
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert rows(db) == after_deploy and tables(db) == after_tables


def test_a_failed_restore_changes_nothing_and_starts_the_app_again(db, host, tmp_path):
    inventory = host["inventory"]()
    before = rows(db)
    holder = db.connect()
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(72707369)")  # a deploy is running
        proc = playbook(inventory, "-e", "restore_confirm=%s" % db.name)
    finally:
        holder.close()
    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    assert "advisory lock (72707369) is held" in proc.stdout
    assert rows(db) == before
    assert (tmp_path / "stopped").exists() and (tmp_path / "started").exists()  # the always: block ran


def test_a_tampered_backup_is_refused_before_the_app_is_stopped(db, host, tmp_path):
    with open(host["backup"]["path"], "ab") as handle:
        handle.write(b"tampered")
    before = rows(db)
    proc = playbook(host["inventory"](restore_backup_path=host["backup"]["path"]), "-e", "restore_confirm=%s" % db.name)
    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    assert "does not match its manifest" in proc.stdout
    assert rows(db) == before and not (tmp_path / "stopped").exists()


def summary_lines(proc) -> list:
    """The lines of the summary play's one task (it ran on the controller, under -l HOST)."""
    match = re.search(r"TASK \[Print one line per host\].*?(?=\n\nPLAY RECAP)", proc.stdout, re.S)
    assert match, proc.stdout
    return [line for line in match.group(0).splitlines() if line.strip().startswith('"%s:' % HOST)]


def test_run_twice_restores_once_and_leaves_the_app_alone_the_second_time(db, host, tmp_path):
    inventory = host["inventory"]()
    first = playbook(inventory, "-e", "restore_confirm=%s" % db.name)
    assert first.returncode == 0, first.stdout + first.stderr
    assert rows(db) == host["rows"] and len(backups(tmp_path, "pre-restore")) == 1
    assert summary_lines(first) and "restored" in summary_lines(first)[0]
    for marker in ("stopped", "started"):
        (tmp_path / marker).unlink()

    second = playbook(inventory, "-e", "restore_confirm=%s" % db.name)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second)["changed"] == 0 and recap(second)["failed"] == 0
    assert "nothing to do: this backup is already in place" in second.stdout
    # No stop/start, no new backup of the current state, and the database is still the backup's.
    assert not (tmp_path / "stopped").exists() and not (tmp_path / "started").exists()
    assert len(backups(tmp_path, "pre-restore")) == 1
    assert rows(db) == host["rows"] and tables(db) == host["tables"]
    [line] = summary_lines(second)
    assert "%s: already in place %s into %s | history matches: True | undo: none" % (
        HOST, host["backup"]["path"], db.name) in line


def test_a_write_after_the_restore_means_the_next_run_restores_again(db, host, tmp_path):
    inventory = host["inventory"]()
    assert playbook(inventory, "-e", "restore_confirm=%s" % db.name).returncode == 0
    db.execute('CREATE TABLE "Later" (id integer)')
    (tmp_path / "stopped").unlink()
    again = playbook(inventory, "-e", "restore_confirm=%s" % db.name)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "stopped").exists() and len(backups(tmp_path, "pre-restore")) == 2
    assert tables(db) == host["tables"]


def test_restore_prepares_the_host_venv_as_recover_does(db, host, tmp_path):
    """The host's own Python has no psycopg2 (as on a host recover just fixed): the modules run from host_venv."""
    probe = subprocess.run(["/usr/bin/python3", "-c", "import psycopg2"], capture_output=True, check=False)
    assert probe.returncode != 0, "this test needs a /usr/bin/python3 without psycopg2"
    venv = tmp_path / "venv"
    inventory = host["inventory"](ansible_python_interpreter="/usr/bin/python3", host_venv_path=str(venv))
    data = json.loads(inventory.read_text())
    del data["local"]["hosts"][HOST]["host_venv_manage"]  # the default, as in production
    inventory.write_text(json.dumps(data))
    done = playbook(inventory, "-e", "restore_confirm=%s" % db.name)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert list((venv / "bin").glob("python-prisma-ops-*"))
    assert rows(db) == host["rows"] and tables(db) == host["tables"]
