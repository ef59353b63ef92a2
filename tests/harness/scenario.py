"""A real P3009 on a throwaway database, made with the real Prisma CLI (used by scripts/demo.py and tests).

`migrate deploy` of the init succeeds; the next deploy of the guardians migration fails on its first
DDL statement (an event trigger blocks DDL for the length of that one deploy, and only then), so the
CLI itself writes a genuine failed row, and every later deploy refuses with P3009. The state the
failure left behind is then shaped deliberately: `not_applied` (nothing of the script ran, as the
native engine's one transaction leaves it), `applied` (the script committed, the row got stuck), or
`partial` (statements 1-3 committed one by one, as Prisma >= 7.4 leaves it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.harness.prisma import PRISMA_VERSION, PrismaProject, cli_env, major

CORPUS = Path(__file__).resolve().parents[1] / "evidence_corpus"
INIT = "20240101000000_init"
GUARDIANS = "20240115000000_guardians"

BLOCKER = """
CREATE FUNCTION public.test_block_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_query() NOT ILIKE '%_prisma_migrations%' THEN
        RAISE EXCEPTION 'blocked by the test harness';
    END IF;
END $$;
CREATE EVENT TRIGGER test_block_ddl ON ddl_command_start EXECUTE FUNCTION public.test_block_ddl();
"""
UNBLOCK = "DROP EVENT TRIGGER test_block_ddl; DROP FUNCTION public.test_block_ddl();"


def add(project: PrismaProject, *names: str) -> None:
    """Copy migrations of the evidence corpus into the project's migrations folder."""
    for name in names:
        shutil.copytree(CORPUS / name, project.migrations_dir / name)


def make_p3009(project: PrismaProject, db, shape: str = "not_applied") -> dict:
    """Deploy init, fail the guardians deploy for real, shape what it left; returns the CLI outputs."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
    add(project, INIT)
    first = project.deploy()
    if first.returncode != 0:
        raise RuntimeError("deploy of the init failed: %s" % first.output)
    add(project, GUARDIANS)
    db.execute(BLOCKER, superuser=True)
    try:
        failed = project.deploy()
    finally:
        db.execute(UNBLOCK, superuser=True)
    if failed.returncode == 0:
        raise RuntimeError("the guardians deploy did not fail: %s" % failed.output)
    script = (project.migrations_dir / GUARDIANS / "migration.sql").read_text()
    statements = parse_script(script).statements
    upto = {"not_applied": 0, "applied": len(statements), "partial": 3}[shape]
    if upto:
        conn = db.connect()
        try:
            with conn.cursor() as cur:
                for statement in statements[:upto]:
                    cur.execute(statement.sql)
        finally:
            conn.close()
    blocked = project.deploy()
    if blocked.error_code != "P3009":
        raise RuntimeError("expected P3009 from the next deploy, got: %s" % blocked.output)
    return {"failed": failed.output, "blocked": blocked.output}


def write_env_file(project: PrismaProject) -> Path:
    path = project.root / ".env"
    path.write_text('DATABASE_URL="%s"\n' % project.database_url)
    path.chmod(0o600)
    return path


def deploy_environment(project: PrismaProject | None = None) -> dict:
    """The offline CLI's environment for the project's Prisma version (6.19.3 without a project), as
    tests/harness/prisma.cli_env makes it, minus DATABASE_URL and the inherited variables."""
    env = cli_env("unused", project.version if project else PRISMA_VERSION)
    return {k: v for k, v in env.items() if k != "DATABASE_URL" and os.environ.get(k) != v}


def deploy_command(project: PrismaProject) -> list:
    """The project's own `prisma migrate deploy`: 6.x is given its schema (as the role's default command does);
    7.x finds its config by itself, or is given the config in a layout it does not look for."""
    argv = [str(project.cli_bin), "migrate", "deploy"]
    if major(project.version) >= 7:
        return argv + project.config_args()
    return argv + ["--schema", project.schema_path] + project.config_args()


def local_inventory(workdir: Path, project: PrismaProject, dbname: str, python: str, host: str = "demo-host",
                    **overrides) -> Path:
    """An inventory of one host over ansible_connection=local, for playbooks/recover.yml on this project."""
    hostvars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": python,  # a Python with psycopg2 and pglast (the project venv)
        "host_venv_manage": False,  # so the modules run with that Python, not a virtualenv built on this machine
        "recover_project_dir": str(project.root),
        "recover_expected_database": dbname,
        "recover_backup_dir": str(workdir / "backups"),
        "recover_report_dir": str(workdir / "reports"),
        "recover_deploy_command": deploy_command(project),
        "recover_deploy_environment": deploy_environment(project),
    }
    # A layout other than prisma/: the role reads the migrations where the project keeps them.
    if project.migrations_path != "prisma/migrations":
        hostvars["recover_migrations_dir"] = str(project.migrations_dir)
    if project.schema_path != "prisma/schema.prisma":
        hostvars["recover_schema_path"] = project.schema_path
    hostvars.update(overrides)
    path = workdir / "inventory.json"
    path.write_text(json.dumps({"local": {"hosts": {host: hostvars}}}, indent=2))
    return path
