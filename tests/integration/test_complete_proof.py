"""Proven completion on real PostgreSQL: prisma_migration_complete compares the schema it made with a clean replay of
migrations 1..N, in the same transaction, and commits only when they are identical. The failed rows come from the real
Prisma CLI (make_p3009: statements 1-3 of 5 committed); the replay runs in a temporary database (CREATEDB), or on the
controller through ansible-playbook and the real action plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.modules import run_module
from tests.harness.scenario import GUARDIANS, make_p3009
from tests.integration.test_complete import schema_dump
from tests.integration.test_resolve_compat import rows_of

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma]

REPO = Path(__file__).resolve().parents[2]


def createdb(db, allowed: bool = True) -> None:
    db.execute('ALTER ROLE "%s" %s' % (db.owner.name, "CREATEDB" if allowed else "NOCREATEDB"), superuser=True)


def complete(db, project, **extra) -> dict:
    args = {"database_url": db.url(), "name": GUARDIANS, "migrations_dir": str(project.migrations_dir)}
    args.update(extra)
    return run_module("prisma_migration_complete", args)


def test_a_partial_migration_is_completed_only_once_proven_identical_to_a_clean_apply(project, db):
    make_p3009(project, db, "partial")
    createdb(db)
    done = complete(db, project)
    assert done["changed"] is True and not done.get("failed"), done
    assert done["proof"] == {"checked": True, "database": "temporary", "reason": None}
    assert [s["index"] for s in done["ran"]] == [4, 5]
    assert project.deploy().returncode == 0


def test_a_schema_changed_by_hand_is_not_completed_and_nothing_is_committed(project, db):
    make_p3009(project, db, "partial")
    createdb(db)
    db.execute('ALTER TABLE "Student" ADD COLUMN "nickname" TEXT')  # someone's hotfix: not in any migration
    rows, schema = rows_of(db), schema_dump(db)

    refused = complete(db, project)
    assert refused.get("failed") and refused["code"] == "not_identical", refused
    assert "column" in refused["msg"] and "nickname" in refused["msg"], refused["msg"]
    assert "nothing was committed" in refused["msg"]
    assert rows_of(db) == rows and schema_dump(db) == schema

    # The statement probes alone cannot see it: without the proof the same state is completed.
    unproven = complete(db, project, proof="skip")
    assert unproven["changed"] is True and unproven["proof"]["checked"] is False, unproven


def test_proof_required_without_any_scratch_database_does_nothing(project, db):
    make_p3009(project, db, "partial")
    rows, schema = rows_of(db), schema_dump(db)
    refused = complete(db, project, proof="required")  # the module alone: no controller replay
    assert refused.get("failed") and refused["code"] == "no_proof", refused
    assert "no CREATEDB" in refused["msg"] and "nothing was done" in refused["msg"]
    assert rows_of(db) == rows and schema_dump(db) == schema


PLAYBOOK = """\
- name: Complete the failed migration
  hosts: all
  gather_facts: false
  tasks:
    - name: Complete, proven
      prisma_ops.migrate.prisma_migration_complete:
        database_url: "{{ url }}"
        migrations_dir: "{{ migrations }}"
        name: "{{ migration }}"
        proof: required
      register: done
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ done | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def test_a_host_without_a_scratch_database_is_proven_on_the_controller(project, db, tmp_path):
    make_p3009(project, db, "partial")
    inventory = {"all": {"hosts": {"app": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "url": db.url(),
        "migrations": str(project.migrations_dir), "migration": GUARDIANS, "out": str(tmp_path / "done.json")}}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "complete.yml").write_text(PLAYBOOK)
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "inventory.json"),
                           str(tmp_path / "complete.yml")], cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "PRISMA_OPS_REPLAY_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    done = json.loads((tmp_path / "done.json").read_text())
    assert done["changed"] is True and done["proof"]["checked"] is True and done["proof"]["database"] == "controller"
    assert "replay_input" not in done
    assert project.deploy().returncode == 0
