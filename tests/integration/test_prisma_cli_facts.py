"""What the collection reads from the real Prisma CLIs (6.19.3 and 7.10.1), checked against the CLIs themselves:
the Datasource line the pre-write CLI check compares, the config files 7.10 finds by itself (the ones project
discovery must find, in the same order), the P-codes of a failed deploy and of a 7.x schema that still has `url`,
and the exit code of `migrate status` after a resolve. If a Prisma release changes any of these, this file fails
first. Real PostgreSQL, the real CLIs."""

from __future__ import annotations

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.cli_check import (
    first_lines, mismatches, parse_datasource,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.prisma_project import discover
from tests.harness.prisma import SCHEMA, PrismaProject
from tests.harness.scenario import GUARDIANS, INIT, add, make_p3009

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma]


@pytest.mark.both_prisma_clis
def test_the_datasource_line_names_the_database_the_cli_is_about_to_use(db, project, prisma_version):
    add(project, INIT)
    status = project.status()
    assert status.returncode == 1, status.output  # one migration not yet applied
    seen = parse_datasource(status.output)
    assert seen is not None, status.output
    assert seen["database"] == db.name and seen["schema"] == "public"
    if prisma_version.startswith("7."):
        # 7.x runs the native engine (here its stand-in): the line says where it connects.
        assert seen["at"] == "127.0.0.1:%d" % db.cluster.port, status.output
    else:
        # 6.19.3 runs through the driver adapter of its config: no server on the line.
        assert seen["at"] is None and 'using driver adapter "@prisma/adapter-pg"' in status.output, status.output
    assert mismatches(seen, db.name, "public", "127.0.0.1", db.cluster.port) == []

    # The same CLI pointed at another database (the URL a stray .env or shell variable would give) says so.
    other = db.cluster.create_database()
    try:
        elsewhere = project.cli("migrate", "status", database_url=other.url(schema="app"))
        wrong = parse_datasource(elsewhere.output)
        assert wrong is not None, elsewhere.output
        assert ("database", other.name, db.name) in mismatches(wrong, db.name, "public", "127.0.0.1", db.cluster.port)
        assert ("schema", "app", "public") in mismatches(wrong, db.name, "public", "127.0.0.1", db.cluster.port)
    finally:
        db.cluster.drop_database(other.name)


# Where 7.10's @prisma/config and c12 find a config without --config, schema and migrations under db/.
CONFIG_LOCATIONS = ("prisma7.config.ts", ".config/prisma7.mts", "prisma.config.ts", "prisma.config/index.ts",
                    ".config/prisma.ts", ".config/prisma/index.cts", ".config/prisma.config.mts")


@pytest.mark.parametrize("config_name", CONFIG_LOCATIONS)
def test_each_config_location_7_10_finds_is_the_one_discovery_finds(db, tmp_path, config_name):
    project = PrismaProject.create(tmp_path / "app", db.url(), version="7.10.1", schema_path="db/schema.prisma",
                                   migrations_path="db/migrations", config_name=config_name)
    add(project, INIT)
    assert project.config_args() == []  # the CLI is not told where the config is
    status = project.status()
    assert "Loaded Prisma config from %s." % config_name in status.output, status.output
    assert "Prisma schema loaded from db/schema.prisma" in status.output, status.output
    assert parse_datasource(status.output) is not None, status.output

    found = discover(str(project.root))
    assert found.config_file == str(project.root / config_name)
    assert found.schema_path == str(project.root / "db" / "schema.prisma") and found.schema_source == "config"
    assert found.migrations_dir == str(project.root / "db" / "migrations") and found.migrations_source == "config"
    assert found.deploy_argv() == [str(project.root / "node_modules" / ".bin" / "prisma"), "migrate", "deploy"]


def test_a_prisma7_config_wins_over_prisma_config_in_the_cli_and_in_discovery(db, tmp_path):
    project = PrismaProject.create(tmp_path / "app", db.url(), version="7.10.1", schema_path="db/schema.prisma",
                                   migrations_path="db/migrations", config_name="prisma7.config.ts")
    # A second, older config beside it naming a folder that does not exist: neither reader may take it.
    (project.root / "prisma.config.ts").write_text((project.root / "prisma7.config.ts").read_text()
                                                   .replace('"db/schema.prisma"', '"old/schema.prisma"'))
    add(project, INIT)
    status = project.status()
    assert "Loaded Prisma config from prisma7.config.ts." in status.output, status.output
    assert discover(str(project.root)).config_file == str(project.root / "prisma7.config.ts")


def test_a_7x_schema_that_still_names_its_url_is_p1012_and_the_check_shows_why(db, tmp_path):
    project = PrismaProject.create(tmp_path / "app", db.url(), schema=SCHEMA, version="7.10.1")
    add(project, INIT)
    status = project.status()
    assert status.returncode == 1 and status.error_code == "P1012", status.output
    # No Datasource line: the CLI check stops the host with the CLI's own words.
    assert parse_datasource(status.output) is None
    assert "no longer supported in schema files" in first_lines(status.output), first_lines(status.output)
    deploy = project.deploy()
    assert deploy.returncode == 1 and deploy.error_code == "P1012"
    assert db.execute("SELECT to_regclass('public._prisma_migrations')") == [(None,)]  # it wrote nothing


@pytest.mark.both_prisma_clis
def test_a_failed_migration_blocks_deploy_with_p3009_and_status_after_a_resolve(db, project, prisma_version):
    outputs = make_p3009(project, db, "not_applied")  # raises unless the next deploy says P3009
    assert GUARDIANS in outputs["blocked"]
    assert project.resolve(GUARDIANS, "rolled_back").returncode == 0
    status = project.status()
    # The rolled-back migration is pending again. 7.9.0 and later say so and exit 1; 6.19.3 exits 0 and claims the
    # schema is up to date. So nothing here reads `migrate status` to decide what is applied: the modules read
    # _prisma_migrations themselves, and the CLI check reads only the Datasource line.
    if prisma_version.startswith("7."):
        assert status.returncode == 1 and GUARDIANS in status.output, status.output
    else:
        assert status.returncode == 0 and "Database schema is up to date!" in status.output, status.output
    assert "P3009" not in status.output
    deploy = project.deploy()
    assert deploy.returncode == 0 and GUARDIANS in deploy.output, deploy.output


@pytest.mark.both_prisma_clis
@pytest.mark.parametrize("sql, said", [
    ('ALTER TABLE "Nope" ADD COLUMN "x" INTEGER;', "No such table: Nope"),
    ('CREATE TABLE "P" ("id" INTEGER PRIMARY KEY, "u" INTEGER);\nINSERT INTO "P" VALUES (1, 99);\n'
     'ALTER TABLE "P" ADD CONSTRAINT "P_u_fkey" FOREIGN KEY ("u") REFERENCES "User"("id");',
     "Foreign key constraint failed: P_u_fkey"),
    ('ALTER TABLE "User" ADD COLUMN "email" TEXT;', 'column "email" of relation "User" already exists'),
])
def test_the_failed_rows_error_is_what_the_driver_adapter_said(db, project, info, sql, said):
    """@prisma/adapter-pg maps some PostgreSQL errors to its own kinds (no ERROR line, no SQLSTATE in the log):
    the info's error message is still the adapter's words, never its `external connector error` header."""
    add(project, INIT)
    assert project.deploy().returncode == 0
    project.add_migration("20250101000000_x", sql + "\n")
    assert project.deploy().returncode == 1
    result = info(migrations_dir=str(project.migrations_dir))
    failed = [m for m in result["migrations"] if m["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"]["engine"] == "driver_adapter", result["migrations"]
    assert failed[0]["error"]["message"] == said and failed[0]["error"]["migration_name"] == "20250101000000_x"
