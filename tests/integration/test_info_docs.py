"""The module's documentation renders, and its EXAMPLES run against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.harness.modules import REPO

INIT = 'CREATE TABLE "User" ("id" SERIAL PRIMARY KEY);\n'
MODULE = "prisma_ops.migrate.prisma_migration_info"


def ansible_env() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
                ANSIBLE_INVENTORY_UNPARSED_WARNING="false")


def venv_tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_ansible_doc_renders():
    proc = subprocess.run([venv_tool("ansible-doc"), MODULE], cwd=REPO, env=ansible_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    for needle in ("migrations_dir", "database_url", "env_file", "deploy_blocked", "failed_migrations", "lock"):
        assert needle in proc.stdout
    assert "ERROR" not in proc.stderr


def load_examples() -> list:
    from ansible_collections.prisma_ops.migrate.plugins.modules import prisma_migration_info
    return yaml.safe_load(prisma_migration_info.EXAMPLES)


def test_examples_run_against_a_real_database(project, db, tmp_path):
    project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=%s\n" % db.url())
    # The examples' host paths and login values point at this test's app tree and database.
    substitutions = {"env_file": str(env_file), "migrations_dir": str(project.migrations_dir),
                     "login_host": "127.0.0.1", "login_port": db.cluster.port, "login_user": db.owner.name,
                     "login_db": db.name}
    tasks = load_examples()
    assert len(tasks) >= 3
    for task in tasks:
        if MODULE in task:
            for key, value in substitutions.items():
                if key in task[MODULE]:
                    task[MODULE][key] = value
    playbook = [{"name": "EXAMPLES of %s" % MODULE, "hosts": "localhost", "connection": "local", "gather_facts": False,
                 "tasks": tasks}]
    (tmp_path / "examples.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump({"vault_app_db_password": db.owner.password,
                                         "ansible_python_interpreter": sys.executable}))
    proc = subprocess.run([venv_tool("ansible-playbook"), str(tmp_path / "examples.yml"), "-e", "@%s" % vars_file],
                          cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=%d" % len(tasks) in proc.stdout and "failed=0" in proc.stdout
    assert db.owner.password not in proc.stdout + proc.stderr
