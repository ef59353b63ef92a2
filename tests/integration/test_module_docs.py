"""Every module's documentation renders, and its EXAMPLES run against a real database."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness.modules import REPO
from tests.harness.prisma import cli_env

INIT = 'CREATE TABLE "User" ("id" SERIAL PRIMARY KEY);\n'
BROKEN_POSTS = 'CREATE TABLE "Post" ("id" SERIAL PRIMARY KEY);\nSELECT 1/0;\n'
MODULES = {
    "prisma_migration_info": ("migrations_dir", "database_url", "env_file", "deploy_blocked", "failed_migrations", "evidence",
                              "shadow_url", "recommended_action"),
    "prisma_migrate_resolve": ("state", "method", "lock_timeout", "resolved", "prisma_command"),
    "pg_backup": ("backup_dir", "reuse_within", "keep_last", "restore_command", "pg_dump_path"),
    "prisma_migrate_deploy": ("project_dir", "command", "environment", "applied", "env_file", "container"),
    "prisma_migration_complete": ("name", "migrations_dir", "lock_timeout", "ran", "skipped_present"),
    "pg_restore": ("path", "backup_dir", "confirm", "history_matches", "pre_restore_backup"),
    "prisma_drift_check": ("migrations_dir", "shadow_url", "backup_max_age", "findings", "failing_kinds"),
    "prisma_drift_report": ("dest", "results", "formats", "keep", "failing_hosts"),
    "prisma_project_info": ("project_dir", "schema_path", "migrations_dir", "config_file", "deploy_command",
                            "project_layout_unknown"),
    "prisma_recover_plan": ("before", "overrides", "partial_strategy", "previews", "to_preview", "recommended_action"),
}


def test_every_module_is_covered():
    """A new module must join MODULES, so its documentation is rendered and checked here."""
    shipped = {p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}
    assert shipped == set(MODULES)


def ansible_env() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
                ANSIBLE_INVENTORY_UNPARSED_WARNING="false")


def venv_tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_ansible_doc_renders(module):
    proc = subprocess.run([venv_tool("ansible-doc"), "prisma_ops.migrate." + module], cwd=REPO, env=ansible_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    for needle in MODULES[module]:
        assert needle in proc.stdout
    assert "ERROR" not in proc.stderr


def example_tasks(module: str, substitutions: dict, extra: dict | None = None) -> list:
    """The module's EXAMPLES, with host paths and credentials pointed at this test's app and database."""
    source = importlib.import_module("ansible_collections.prisma_ops.migrate.plugins.modules." + module)
    tasks = yaml.safe_load(source.EXAMPLES)
    fqcn = "prisma_ops.migrate." + module
    assert len(tasks) >= 3
    for task in tasks:
        if fqcn in task:
            args = task[fqcn]
            for key, value in substitutions.items():
                if key in args:
                    args[key] = value
            runs_prisma_cli = args.get("method") == "cli" or module == "prisma_migrate_deploy"
            for key, value in (extra or {}).items():
                if runs_prisma_cli or key != "environment":
                    args.setdefault(key, value)
    return tasks


def run_playbook(tmp_path: Path, tasks: list, extra_vars: dict) -> subprocess.CompletedProcess:
    playbook = [{"name": "EXAMPLES", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
    (tmp_path / "examples.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(dict(extra_vars, ansible_python_interpreter=sys.executable)))
    return subprocess.run([venv_tool("ansible-playbook"), str(tmp_path / "examples.yml"), "-e", "@%s" % vars_file],
                          cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)


def test_info_examples_run_against_a_real_database(project, db, tmp_path):
    project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=%s\n" % db.url())
    tasks = example_tasks("prisma_migration_info", {
        "env_file": str(env_file), "migrations_dir": str(project.migrations_dir), "login_host": "127.0.0.1",
        "login_port": db.cluster.port, "login_user": db.owner.name, "login_db": db.name})

    proc = run_playbook(tmp_path, tasks, {"vault_app_db_password": db.owner.password})

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=%d" % len(tasks) in proc.stdout and "failed=0" in proc.stdout
    assert db.owner.password not in proc.stdout + proc.stderr


def test_resolve_examples_run_against_a_real_database(project, db, tmp_path):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_add_posts", BROKEN_POSTS)
    assert project.deploy().returncode == 1  # add_posts failed: P3009 from now on
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=%s\n" % db.url())
    # The offline test CLI needs these (tests/harness/prisma.cli_env); a real host needs none of them.
    offline = {k: v for k, v in cli_env("unused").items() if k.startswith("PRISMA_") or k == "NODE_OPTIONS"}
    tasks = example_tasks("prisma_migrate_resolve", {
        "env_file": str(env_file), "migrations_dir": str(project.migrations_dir), "project_dir": str(project.root)},
        extra={"environment": offline})

    proc = run_playbook(tmp_path, tasks, {"vault_database_url": db.url()})

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed=0" in proc.stdout
    assert "msg: 'cli: [''20250102000000_add_posts'']'" in proc.stdout  # the yaml callback doubles the quotes
    assert db.owner.password not in proc.stdout + proc.stderr
    rows = db.execute("SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL "
                      "FROM _prisma_migrations ORDER BY started_at, id")
    assert rows == [("20250101000000_init", True, False), ("20250102000000_add_posts", False, True),
                    ("20250102000000_add_posts", True, False)]


def test_deploy_examples_run_against_a_real_database(project, db, tmp_path):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_posts", 'CREATE TABLE "Post" ("id" SERIAL PRIMARY KEY);\n')
    (project.root / "package.json").write_text(
        '{"name": "app", "private": true, "scripts": {"prisma:migrate:deploy": "prisma migrate deploy"}}\n')
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=%s\n" % db.url())
    offline = {k: v for k, v in cli_env("unused").items() if k.startswith("PRISMA_") or k == "NODE_OPTIONS"}
    tasks = example_tasks("prisma_migrate_deploy", {"env_file": str(env_file), "project_dir": str(project.root)},
                          extra={"environment": offline})
    for task in tasks:  # the example app keeps its schema under src/; this test project under prisma/
        args = task.get("prisma_ops.migrate.prisma_migrate_deploy", {})
        if "--schema" in args.get("command", []):
            args["command"][args["command"].index("--schema") + 1] = "prisma/schema.prisma"

    proc = run_playbook(tmp_path, tasks, {"vault_database_url": db.url()})

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=%d" % len(tasks) in proc.stdout and "failed=0" in proc.stdout
    assert "first: [''20250101000000_init'', ''20250102000000_posts'']; second: []" in proc.stdout
    assert db.owner.password not in proc.stdout + proc.stderr
    assert db.execute("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")[0][0] == 2


def test_pg_backup_examples_run_against_a_real_database(db, tmp_path):
    db.execute('CREATE TABLE "User" ("id" SERIAL PRIMARY KEY); INSERT INTO "User" DEFAULT VALUES;')
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=%s\n" % db.url())
    backup_dir = tmp_path / "backups"
    tasks = example_tasks("pg_backup", {
        "env_file": str(env_file), "backup_dir": str(backup_dir), "login_host": "127.0.0.1",
        "login_port": db.cluster.port, "login_user": db.owner.name, "login_db": db.name})

    proc = run_playbook(tmp_path, tasks, {"vault_app_db_password": db.owner.password, "vault_database_url": db.url()})

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=%d" % len(tasks) in proc.stdout and "failed=0" in proc.stdout
    assert db.owner.password not in proc.stdout + proc.stderr
    names = sorted(os.listdir(backup_dir))
    assert sorted(n.rsplit(".", 1)[-1] for n in names if not n.endswith(".json")) == ["dir", "dump"]
    assert not any(n.endswith(".sql") for n in names)  # the check-mode task wrote nothing
    assert "pg_restore --host=127.0.0.1" in proc.stdout
