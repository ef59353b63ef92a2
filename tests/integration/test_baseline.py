"""Baselining from evidence (issue 12): a database whose tables were made without Prisma's history (P3005, seen from
the real Prisma CLI). The folder is replayed in one pass and the live schema compared with each prefix: exactly one
equal prefix is a proven baseline; a migration that changes no schema object makes it ambiguous; a change outside
the migrations makes it no match. On the host (a role with CREATEDB) and on the controller (no CREATEDB), through
the real action plugin.
"""

from __future__ import annotations

import json

import pytest

from tests.harness.modules import run_module
from tests.harness.prisma import PrismaProject
from tests.integration.test_controller_replay import run_fleet

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma]

MIGRATIONS = (
    ("20240101000000_init", 'CREATE TABLE "User" ("id" SERIAL NOT NULL, "email" TEXT NOT NULL, '
                            'CONSTRAINT "User_pkey" PRIMARY KEY ("id"));\n'
                            'CREATE UNIQUE INDEX "User_email_key" ON "User"("email");\n'),
    ("20240201000000_posts", 'CREATE TABLE "Post" ("id" SERIAL NOT NULL, "authorId" INTEGER NOT NULL, '
                             'CONSTRAINT "Post_pkey" PRIMARY KEY ("id"));\n'
                             'ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") '
                             'REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;\n'),
    ("20240301000000_bio", 'ALTER TABLE "User" ADD COLUMN "bio" TEXT;\n'),
)
DATA_ONLY = ("20240115000000_seed", "INSERT INTO \"User\" (\"email\") VALUES ('admin@example.com');\n")


def made_by_hand(db, project: PrismaProject, upto: int, migrations=MIGRATIONS) -> None:
    """The schema of migrations 1..upto made without Prisma (as `db push` or a dump leaves it); the folder holds all."""
    for name, script in migrations:
        project.add_migration(name, script)
    for _name, script in migrations[:upto]:
        db.execute(script)
    assert project.deploy().error_code == "P3005"


def info(db, project) -> dict:
    return run_module("prisma_migration_info", {"database_url": db.url(), "migrations_dir": str(project.migrations_dir),
                                                "evidence": True})


@pytest.fixture
def createdb_db(pg_cluster):
    role = pg_cluster.create_role("bl_%s" % __import__("secrets").token_hex(3), createdb=True)
    database = pg_cluster.create_database(owner=role)
    yield database
    pg_cluster.drop_database(database.name)


def test_a_proven_baseline_on_the_host(createdb_db, tmp_path):
    db = createdb_db
    project = PrismaProject.create(tmp_path / "app", db.url())
    made_by_hand(db, project, 2)

    result = info(db, project)

    assert result["baseline_needed"] is True
    baseline = result["baseline"]
    assert baseline["status"] == "proven" and baseline["database"] == "temporary", baseline
    assert baseline["prefix"] == [MIGRATIONS[0][0], MIGRATIONS[1][0]] and baseline["pending"] == [MIGRATIONS[2][0]]
    # Prisma's own baselining with that prefix, then deploy: the history is clean and the schema complete.
    for name in baseline["prefix"]:
        assert project.resolve(name, "applied").returncode == 0
    assert project.deploy().returncode == 0 and project.status().returncode == 0
    assert db.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'prisma_ops_shadow_%'") == [(0,)]


def test_ambiguous_and_no_match_are_never_proven(createdb_db, tmp_path):
    db = createdb_db
    project = PrismaProject.create(tmp_path / "app", db.url())
    with_seed = MIGRATIONS[:1] + (DATA_ONLY,) + MIGRATIONS[1:]
    made_by_hand(db, project, 1, with_seed)
    ambiguous = info(db, project)["baseline"]
    assert ambiguous["status"] == "ambiguous" and ambiguous["prefix"] == [], ambiguous
    assert "migrations 1..1 (%s) and migrations 1..2 (%s)" % (MIGRATIONS[0][0], DATA_ONLY[0]) in ambiguous["reason"]

    db.execute('ALTER TABLE "User" ADD COLUMN "nickname" TEXT')  # a change no migration makes
    drift = info(db, project)["baseline"]
    assert drift["status"] == "no_match" and drift["prefix"] == [], drift
    assert any(d["name"] == "public.User.nickname" for d in drift["differences"]), drift["differences"]


def test_no_baseline_without_need_and_a_proven_one_on_the_controller(db, project, tmp_path):
    # The app role has no CREATEDB: the module asks the controller (the action plugin) to replay the folder.
    made_by_hand(db, project, 3)
    result = run_fleet(tmp_path, {"host": (db.url(), project.migrations_dir)})["host"]
    baseline = result["baseline"]
    assert baseline["status"] == "proven" and baseline["database"] == "controller", baseline
    assert baseline["prefix"] == [n for n, _s in MIGRATIONS] and baseline["pending"] == []
    again = run_fleet(tmp_path, {"host": (db.url(), project.migrations_dir)})["host"]
    assert again["baseline"] == baseline
    # With the controller replay off: no replay anywhere, so nothing is proven, and the reason says so.
    off = run_fleet(tmp_path, {"host": (db.url(), project.migrations_dir)}, replay=False)["host"]["baseline"]
    assert off["status"] == "unproven" and "no CREATEDB" in off["reason"], off
    # A database managed by Prisma needs no baseline.
    for name, _script in MIGRATIONS:
        assert project.resolve(name, "applied").returncode == 0
    assert json.loads(json.dumps(info(db, project)))["baseline"] is None


def test_recover_baselines_only_when_asked_and_proven(db, project, tmp_path, pg_cluster):
    """recover.yml on a P3005 host (no CREATEDB: the replay runs on the controller): by default it stops before any
    change and names the proven prefix; with recover_baseline it marks that prefix applied and deploys the rest,
    leaving the schema of a clean deploy and a clean history."""
    import sys
    from tests.harness.scenario import local_inventory, write_env_file
    from tests.integration.test_complete import schema_dump
    from tests.integration.test_recover_local import HOST, files, playbook, recap
    made_by_hand(db, project, 2)
    write_env_file(project)

    stopped = playbook(local_inventory(tmp_path, project, db.name, sys.executable, host=HOST))
    text = " ".join(stopped.stdout.split())
    assert stopped.returncode != 0 and recap(stopped)["failed"] == 1, stopped.stdout
    assert "baseline needed (P3005" in text and "the evidence's baseline is proven" in text, text
    assert "Set recover_baseline=true to mark %s, %s applied" % (MIGRATIONS[0][0], MIGRATIONS[1][0]) in text
    assert db.execute("SELECT to_regclass('public._prisma_migrations')") == [(None,)]
    assert files(tmp_path / "backups") == []

    done = playbook(local_inventory(tmp_path, project, db.name, sys.executable, host=HOST, recover_baseline=True))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "reports" / ("%s.json" % HOST)).read_text())
    assert report["status"] == "recovered"
    assert [(s["name"], s["source"], s["action"]) for s in report["plan"]] == [
        (MIGRATIONS[0][0], "baseline", "applied"), (MIGRATIONS[1][0], "baseline", "applied")]
    assert project.status().returncode == 0
    assert db.execute("SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NULL FROM _prisma_migrations "
                      "ORDER BY migration_name") == [(n, True, True) for n, _s in MIGRATIONS]
    clean = pg_cluster.create_database()
    try:
        twin = PrismaProject.create(tmp_path / "twin", clean.url())
        for name, script in MIGRATIONS:
            twin.add_migration(name, script)
        assert twin.deploy().returncode == 0
        assert schema_dump(db) == schema_dump(clean)
    finally:
        pg_cluster.drop_database(clean.name)
