"""The built collection works by FQCN from an installed copy, not from this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = "prisma_ops.migrate.prisma_migration_info"
# Paths that must never be shipped: tooling venv, ansible-test output, benchmarks, the
# .collections symlink back to the checkout, build output, VCS data.
FORBIDDEN = (".venv", "tests/output", "bench", ".collections", ".build", ".git")

pytestmark = pytest.mark.integration


def _tool(name: str) -> str:
    """The ansible CLI next to the running interpreter (.venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    assert found, "%s not found: run `make setup`" % name
    return found


def _isolated_env(tmp_path: Path, collections_path: Path) -> dict:
    """Environment that sees only collections_path: no inherited ANSIBLE_* settings, an empty
    ansible.cfg, no collections found through sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    empty_cfg = tmp_path / "empty-ansible.cfg"
    empty_cfg.touch()
    env.update(
        ANSIBLE_CONFIG=str(empty_cfg),
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
    )
    return env


def _run(cmd: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    result = _run([_tool("ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), str(REPO)], out, env)
    assert result.returncode == 0, result.stdout + result.stderr
    tarballs = list(out.glob("prisma_ops-migrate-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]


def test_tarball_ships_no_checkout_artefacts(built: Path) -> None:
    with tarfile.open(built) as tar:
        names = tar.getnames()
    assert "plugins/modules/prisma_migration_info.py" in names
    assert "meta/runtime.yml" in names
    leaked = sorted(n for n in names for f in FORBIDDEN if n == f or n.startswith(f + "/"))
    assert not leaked, leaked


def test_installed_collection_resolves_by_fqcn(built: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "outside-the-checkout"
    workdir.mkdir()
    collections = tmp_path / "collections"
    env = _isolated_env(tmp_path, collections)

    result = _run([_tool("ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections), str(built)], workdir, env)
    assert result.returncode == 0, result.stdout + result.stderr
    installed = collections / "ansible_collections" / "prisma_ops" / "migrate"
    assert installed.is_dir() and not installed.is_symlink()
    assert (installed / "MANIFEST.json").is_file()

    result = _run([_tool("ansible-doc"), "-t", "module", MODULE], workdir, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert MODULE in result.stdout
    # ansible-doc names the file it documented: it must be the installed copy.
    assert str(installed / "plugins" / "modules" / "prisma_migration_info.py") in result.stdout, result.stdout
    assert str(REPO) not in result.stdout


def test_isolation_hides_the_checkout(tmp_path: Path) -> None:
    """With nothing installed, the same environment cannot find the module: the test above
    proves the installed copy, not some other path that leaks the checkout."""
    workdir = tmp_path / "outside-the-checkout"
    workdir.mkdir()
    env = _isolated_env(tmp_path, tmp_path / "empty-collections")
    result = _run([_tool("ansible-doc"), "-t", "module", MODULE], workdir, env)
    # ansible-doc 2.19 exits 0 here, with a warning that the plugin was not found.
    assert "was not found" in result.stderr, result.stdout + result.stderr
    assert "> MODULE" not in result.stdout
    assert str(REPO) not in result.stdout
