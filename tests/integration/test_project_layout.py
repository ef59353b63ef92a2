"""A project whose config puts the schema and migrations elsewhere (Prisma 7's own layout, schema under db/):
prisma_project_info finds them as the real CLI does, and recover.yml recovers such a host with no layout variable
set. Real PostgreSQL, the real Prisma CLIs (6.19.3 and 7.10.1), playbooks/recover.yml as an operator runs it."""

from __future__ import annotations

import json
import sys

import pytest

from tests.harness.modules import run_module
from tests.harness.prisma import PrismaProject
from tests.harness.scenario import GUARDIANS, INIT, add, deploy_environment, local_inventory, make_p3009, \
    write_env_file
from tests.integration.test_recover_local import HOST, in_sync, playbook, recap, rows

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma]

VERSIONS = ("6.19.3", "7.10.1")


def db_project(tmp_path, db, version: str) -> PrismaProject:
    """The app with its config at the root and everything else under db/ (nothing at prisma/)."""
    return PrismaProject.create(tmp_path / "app", db.url(), version=version, schema_path="db/schema.prisma",
                                migrations_path="db/migrations")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_found_layout_and_deploy_command_are_what_the_real_cli_uses(db, tmp_path, version):
    project = db_project(tmp_path, db, version)
    add(project, INIT)
    found = run_module("prisma_project_info", {"project_dir": str(project.root)}, check_mode=True)
    assert found.get("failed") is not True, found
    assert found["config_file"] == str(project.root / "prisma.config.ts") and found["schema_source"] == "config"
    assert found["migrations_dir"] == str(project.root / "db" / "migrations") and found["migrations_dir_exists"]
    assert found["deploy_command"] == [str(project.root / "node_modules" / ".bin" / "prisma"), "migrate", "deploy"]
    assert found["changed"] is False and not (project.root / "prisma").exists()

    # The command it names, run as found, deploys this project's migrations: the real CLI agrees on the layout.
    import subprocess
    from tests.harness.prisma import cli_env
    proc = subprocess.run(found["deploy_command"], cwd=project.root, env=cli_env(db.url(), version),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert in_sync(db, [INIT])


@pytest.mark.parametrize("version", VERSIONS)
def test_recover_finds_a_db_layout_by_itself_and_recovers(db, tmp_path, version):
    """No recover_migrations_dir, no recover_schema_path, no recover_deploy_command: preflight finds them in the
    project's config, and the P3009 is recovered with the project's own CLI."""
    project = db_project(tmp_path, db, version)
    write_env_file(project)
    make_p3009(project, db, "not_applied")
    inventory = local_inventory(tmp_path, project, db.name, sys.executable, host=HOST, recover_deploy_command=[],
                                recover_schema_path="", recover_migrations_dir="",
                                recover_deploy_environment=deploy_environment(project))

    proc = playbook(inventory)

    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert recap(proc)["failed"] == 0
    assert in_sync(db, [INIT, GUARDIANS])
    report = json.loads((tmp_path / "reports" / ("%s.json" % HOST)).read_text())
    assert report["status"] == "recovered"
    assert report["project"]["migrations_dir"] == str(project.root / "db" / "migrations")
    assert report["project"]["config_file"] == str(project.root / "prisma.config.ts")
    assert report["project"]["deploy_command"] == [str(project.root / "node_modules" / ".bin" / "prisma"), "migrate",
                                                   "deploy"]
    assert [a["action"] for a in report["actions"]] == ["backup", "resolve_rolled_back", "deploy"]
    assert report["versions"]["prisma"] == version


def test_a_config_that_computes_its_paths_stops_before_anything_with_the_variable_to_set(db, tmp_path):
    project = db_project(tmp_path, db, "7.10.1")
    write_env_file(project)
    make_p3009(project, db, "not_applied")
    config = project.root / "prisma.config.ts"
    config.write_text(config.read_text().replace('"db/schema.prisma"', "process.env.PRISMA_SCHEMA ?? 'db/schema.prisma'"))
    assert "process.env.PRISMA_SCHEMA" in config.read_text()
    before = rows(db)
    inventory = local_inventory(tmp_path, project, db.name, sys.executable, host=HOST, recover_deploy_command=[],
                                recover_schema_path="", recover_migrations_dir="",
                                recover_deploy_environment=deploy_environment(project))

    proc = playbook(inventory)

    text = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    assert "Preflight | Find the project's schema, migrations folder and Prisma CLI" in text
    assert "prisma.config.ts computes its schema path (process.env.PRISMA_SCHEMA ?? 'db/schema.prisma')" in text, \
        text[-3000:]
    assert "recover_schema_path" in text and "recover_migrations_dir" in text
    assert rows(db) == before and not (tmp_path / "backups").exists()

    # Given the variables, the same host recovers.
    inventory = local_inventory(tmp_path, project, db.name, sys.executable, host=HOST, recover_deploy_command=[],
                                recover_schema_path="db/schema.prisma", recover_migrations_dir="db/migrations",
                                recover_deploy_environment=deploy_environment(project))
    proc = playbook(inventory)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert in_sync(db, [INIT, GUARDIANS])


def test_drift_check_reads_the_folder_the_config_names(db, tmp_path):
    project = db_project(tmp_path, db, "7.10.1")
    add(project, INIT)
    assert project.deploy().returncode == 0
    result = run_module("prisma_drift_check", {"database_url": db.url(), "project_dir": str(project.root),
                                               "checks": ["history"]}, check_mode=True)
    assert result.get("failed") is not True, result
    assert result["migrations_dir"] == str(project.root / "db" / "migrations")
    assert result["summary"] == "no drift", result["summary"]
    neither = run_module("prisma_drift_check", {"database_url": db.url(), "checks": ["history"]})
    assert neither["failed"] is True and "one of the following is required: migrations_dir, project_dir" in neither["msg"]
