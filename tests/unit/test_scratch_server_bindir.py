"""Where the controller finds PostgreSQL server binaries for its replay (plugin_utils/scratch_server.find_bindir)."""

from __future__ import annotations

import glob
import os

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.scratch_server import BINDIR_ENV, find_bindir

pytestmark = pytest.mark.unit

INSTALLED = sorted(os.path.dirname(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def test_the_installed_major_is_found_and_an_unknown_major_gets_the_newest(monkeypatch):
    monkeypatch.delenv(BINDIR_ENV, raising=False)
    assert INSTALLED, "make setup installs PostgreSQL 15 here"
    major = int(INSTALLED[0].split("/")[-2])
    assert find_bindir(major) == INSTALLED[0]
    assert find_bindir(999) in INSTALLED


def test_the_environment_variable_names_the_bin_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(BINDIR_ENV, INSTALLED[0])
    assert find_bindir(999) == INSTALLED[0]
    monkeypatch.setenv(BINDIR_ENV, str(tmp_path))
    with pytest.raises(PrismaOpsError, match="%s=%s holds no initdb" % (BINDIR_ENV, tmp_path)):
        find_bindir(15)
