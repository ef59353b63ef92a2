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
from tests.harness.prisma import PRISMA_VERSION, PRISMA_VERSIONS, PrismaProject  # noqa: E402
from tests.harness.modules import run_module  # noqa: E402

if not (REPO / ".collections" / "ansible_collections" / "prisma_ops" / "migrate" / "galaxy.yml").exists():
    raise pytest.UsageError("the collection is not linked under .collections: run `make setup` first")


def pytest_generate_tests(metafunc) -> None:
    """Tests marked both_prisma_clis run once per oracle CLI (PRISMA_VERSIONS); the rest on 6.19.3 only,
    so the suite's time does not double."""
    if "prisma_version" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_prisma_clis"):
        metafunc.parametrize("prisma_version", PRISMA_VERSIONS, indirect=True, ids=["prisma" + v for v in PRISMA_VERSIONS])


@pytest.fixture(scope="session")
def prisma_version(request) -> str:
    """The Prisma CLI version the test's projects use: 6.19.3 unless the test is marked both_prisma_clis.
    Session scope, so module-scoped fixtures can build their states once per version."""
    return getattr(request, "param", PRISMA_VERSION)


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
def project(db, tmp_path, prisma_version):
    """A real Prisma project (app tree) of the test's Prisma version, pointing at the test database."""
    return PrismaProject.create(tmp_path / "app", db.url(), version=prisma_version)


@pytest.fixture
def info(db):
    """Run prisma_migration_info against the test database; extra args override."""
    def _run(check_mode: bool = False, **args):
        params = {"database_url": db.url()}
        params.update(args)
        return run_module("prisma_migration_info", params, check_mode=check_mode)
    return _run
