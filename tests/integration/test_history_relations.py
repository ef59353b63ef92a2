"""A `_prisma_migrations` that is not a plain table: a view, a partitioned table, a materialized view, a foreign
table, a sequence. Prisma looks only for relkind 'r' (flavour/postgres.rs table_names), so deploy meets P3005 or
fails creating its table; the collection must see the relation as present (never "missing", never "baseline
needed"), read it when it can, say what it is, and never write into it, in check mode as in a real run.

The history is made by a real `prisma migrate deploy` (init applied, broken failed), then moved behind the relation.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.harness.modules import run_module
from tests.harness.pgcluster import Database, free_port
from tests.harness.prisma import PrismaProject
from tests.harness.scenario import local_inventory, write_env_file
from tests.integration.test_recover_local import HOST, files, playbook, recap

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma]

INIT = 'CREATE TABLE "User" ("id" SERIAL NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));\n'
BROKEN = 'CREATE TABLE "Broken" ("id" INTEGER);\nSELECT 1/0;\n'
M_INIT, M_BROKEN = "20250101000000_init", "20250102000000_broken"
MIGRATIONS = ((M_INIT, INIT), (M_BROKEN, BROKEN))
COLUMNS = ("id VARCHAR(36) NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, "
           "migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, "
           "started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0")

# The history moved into "_history", then a relation of each kind named _prisma_migrations in its place.
READABLE = {
    "view": 'CREATE VIEW _prisma_migrations AS SELECT * FROM "_history"',
    "partitioned table": 'CREATE TABLE _prisma_migrations (%s) PARTITION BY RANGE (started_at); '
                         'CREATE TABLE _prisma_migrations_all PARTITION OF _prisma_migrations DEFAULT; '
                         'INSERT INTO _prisma_migrations SELECT * FROM "_history"' % COLUMNS,
    "materialized view": 'CREATE MATERIALIZED VIEW _prisma_migrations AS SELECT * FROM "_history"',
}


@pytest.fixture(scope="module")
def failed_template(pg_cluster, tmp_path_factory):
    base = pg_cluster.create_database()
    project = PrismaProject.create(tmp_path_factory.mktemp("tpl") / "app", base.url())
    for name, script in MIGRATIONS:
        project.add_migration(name, script)
    assert project.deploy().returncode == 1
    base.execute('ALTER TABLE _prisma_migrations RENAME TO "_history"')
    yield base
    pg_cluster.drop_database(base.name)


@pytest.fixture
def moved(failed_template, tmp_path):
    """(database, project): the failed history in "_history", no _prisma_migrations yet."""
    db = failed_template.copy(failed_template.name + "_" + os.urandom(3).hex())
    project = PrismaProject.create(tmp_path / "app", db.url())
    for name, script in MIGRATIONS:
        project.add_migration(name, script)
    yield db, project
    db.cluster.drop_database(db.name)


def history(db: Database) -> list:
    return db.execute('SELECT * FROM "_history" ORDER BY started_at, id')


def info(db: Database, project: PrismaProject) -> dict:
    return run_module("prisma_migration_info", {"database_url": db.url(), "migrations_dir": str(project.migrations_dir)})


def resolve(db: Database, project: PrismaProject, state: str, check_mode: bool) -> dict:
    return run_module("prisma_migrate_resolve", {"database_url": db.url(), "method": "native", "name": M_BROKEN,
                                                 "state": state, "migrations_dir": str(project.migrations_dir)},
                      check_mode=check_mode)


@pytest.mark.parametrize("kind", sorted(READABLE))
def test_a_readable_relation_is_read_reported_and_never_written(moved, kind):
    db, project = moved
    db.execute(READABLE[kind])
    before = history(db)

    result = info(db, project)
    assert result.get("failed") is not True, result
    assert result["table_exists"] is True and result["table_kind"] == kind
    assert result["baseline_needed"] is False and "baseline needed" not in result["summary"]
    assert result["failed_migrations"] == [M_BROKEN]  # read, not "missing"
    assert result["deploy_blocked"] is True and result["in_sync"] is False
    assert "is a %s, not a table" % kind in result["table_finding"]
    assert result["table_finding"] in result["summary"]

    for state in ("rolled_back", "applied"):
        for check_mode in (True, False):
            refused = resolve(db, project, state, check_mode)
            assert refused.get("failed") is True and refused["code"] == "history_not_a_table", refused
            assert refused["changed"] is False and "never writes into a %s" % kind in refused["msg"]
    assert history(db) == before


@pytest.mark.parametrize("kind", sorted(READABLE))
def test_completion_never_writes_into_such_a_relation(moved, kind):
    db, project = moved
    db.execute(READABLE[kind])
    before, tables = history(db), db.execute("SELECT relname FROM pg_class WHERE relname = 'Broken'")
    for check_mode in (True, False):
        refused = run_module("prisma_migration_complete", {"database_url": db.url(), "name": M_BROKEN,
                                                           "migrations_dir": str(project.migrations_dir)},
                             check_mode=check_mode)
        assert refused.get("failed") is True and refused["code"] == "history_not_a_table", refused
        assert not refused.get("changed")
    assert history(db) == before
    assert db.execute("SELECT relname FROM pg_class WHERE relname = 'Broken'") == tables


def test_prisma_itself_does_not_take_a_view_for_its_table(moved):
    db, project = moved
    db.execute(READABLE["view"])
    before = history(db)
    deployed = project.deploy()
    # Prisma lists relkind 'r' only: with other tables present it refuses the schema as not empty.
    assert deployed.returncode != 0 and deployed.error_code == "P3005", deployed.output
    assert history(db) == before


def test_a_view_without_prismas_columns_is_a_clear_failure_not_missing(moved):
    db, project = moved
    db.execute("CREATE VIEW _prisma_migrations AS SELECT 1 AS one")
    result = info(db, project)
    assert result.get("failed") is True and result["code"] == "history_not_a_table", result
    assert "is a view, not a table" in result["msg"] and "column \"id\" does not exist" in result["msg"]


def test_an_unreadable_foreign_table_is_a_clear_failure(moved):
    db, project = moved
    # A foreign server that does not answer: the relation is there, its rows cannot be read.
    db.execute("CREATE EXTENSION postgres_fdw; "
               "CREATE SERVER gone FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '%d', dbname 'x'); "
               "CREATE USER MAPPING FOR PUBLIC SERVER gone OPTIONS (user 'x', password 'x'); "
               "CREATE FOREIGN TABLE public._prisma_migrations (%s) SERVER gone; "
               "ALTER FOREIGN TABLE public._prisma_migrations OWNER TO %s" % (free_port(), COLUMNS, db.owner.name),
               superuser=True)
    result = info(db, project)
    assert result.get("failed") is True and result["code"] == "history_not_a_table", result
    assert "is a foreign table, not a table" in result["msg"]
    refused = resolve(db, project, "applied", check_mode=True)
    assert refused.get("failed") is True and refused["code"] == "history_not_a_table", refused


def test_a_sequence_of_that_name_is_present_not_missing(moved):
    db, project = moved
    db.execute("CREATE SEQUENCE _prisma_migrations")
    result = info(db, project)
    assert result.get("failed") is True and result["code"] == "history_not_a_table", result
    assert "is a sequence, not a table" in result["msg"]
    for check_mode in (True, False):
        refused = resolve(db, project, "applied", check_mode)
        assert refused.get("failed") is True and refused["code"] == "history_not_a_table", refused
    assert db.execute("SELECT relkind FROM pg_class WHERE relname = '_prisma_migrations'") == [("S",)]


def test_drift_check_reads_a_partitioned_history_and_is_not_in_sync(moved):
    db, project = moved
    db.execute(READABLE["partitioned table"])
    result = run_module("prisma_drift_check", {"database_url": db.url(), "migrations_dir": str(project.migrations_dir),
                                               "checks": ["history"]})
    checked = result["checks"]["history"]
    assert checked["table_exists"] is True and checked["baseline_needed"] is False, result
    assert checked["failed"] == [M_BROKEN] and checked["deploy_blocked"] is True and checked["in_sync"] is False
    assert "is a partitioned table, not a table" in checked["summary"]
    relation = [f for f in result["findings"] if f["kind"] == "history_relation"]
    assert len(relation) == 1 and relation[0]["object"] == "partitioned table", result["findings"]
    assert "is a partitioned table, not a table" in relation[0]["detail"]
    assert result["kinds"][:2] == ["history_relation", "failed"]
    failing = run_module("prisma_drift_check", {"database_url": db.url(), "migrations_dir": str(project.migrations_dir),
                                                "checks": ["history"], "fail_on": ["history_relation"]})
    assert failing["fail"] is True and failing["failing_kinds"] == ["history_relation"], failing


def test_recover_stops_before_the_backup_and_names_the_relation(moved, tmp_path):
    """recover.yml on a host whose history is a view: it stops at plan time, before the backup, any app stop or
    write, and its report and message say what the relation is."""
    db, project = moved
    db.execute(READABLE["view"])
    before = history(db)
    write_env_file(project)

    proc = playbook(local_inventory(tmp_path, project, db.name, sys.executable, host=HOST))

    assert proc.returncode != 0 and recap(proc)["failed"] == 1, proc.stdout
    text = " ".join((proc.stdout + proc.stderr).split())
    assert 'stopped before any change: "public"."_prisma_migrations" is a view, not a table' in text, text
    assert "Plan | Record why this host stops (before any step)" in proc.stdout
    assert "Backup |" not in proc.stdout and files(tmp_path / "backups") == []
    assert history(db) == before
    report = json.loads((tmp_path / "reports" / ("%s.json" % HOST)).read_text())
    assert "is a view" in json.dumps(report)
