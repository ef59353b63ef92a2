"""Fixtures shared by every test: throwaway PostgreSQL, real Prisma projects, module runners."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for entry in (str(REPO), str(REPO / ".collections")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from tests.harness.pgcluster import running_cluster  # noqa: E402
from tests.harness.prisma import PrismaProject  # noqa: E402
from tests.harness.modules import run_module  # noqa: E402

if not (REPO / ".collections" / "ansible_collections" / "prisma_ops" / "migrate" / "galaxy.yml").exists():
    raise pytest.UsageError("the collection is not linked under .collections: run `make setup` first")


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL 15 cluster per test process (pytest-xdist worker), password auth over TCP."""
    # Not under pytest's tmp_path: that is private to root and the server runs as `postgres`.
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def db(pg_cluster):
    """A fresh database owned by its own non-superuser app role, dropped after the test."""
    database = pg_cluster.create_database()
    yield database
    pg_cluster.drop_database(database.name)


@pytest.fixture
def project(db, tmp_path):
    """A real Prisma project (app tree) pointing at the test database."""
    return PrismaProject.create(tmp_path / "app", db.url())


@pytest.fixture
def info(db):
    """Run prisma_migration_info against the test database; extra args override."""
    def _run(check_mode: bool = False, **args):
        params = {"database_url": db.url()}
        params.update(args)
        return run_module("prisma_migration_info", params, check_mode=check_mode)
    return _run
