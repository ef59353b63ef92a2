"""Run a snippet of Python as an unprivileged user, for permission tests that root would pass trivially."""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

from tests.harness.modules import REPO

USER = "nobody"
SYSTEM_PYTHON = "/usr/bin/python3"  # the venv's interpreter lives under /root, which nobody cannot enter


def shared_tmpdir() -> str:
    """A directory the unprivileged user can traverse (pytest's tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="prisma-ops-perm-")
    os.chmod(path, 0o755)
    atexit.register(shutil.rmtree, path, True)
    return path


def _module_utils_copy() -> str:
    """A world-readable copy of plugins/module_utils, wherever the checkout itself lives."""
    root = shared_tmpdir()
    target = os.path.join(root, "ansible_collections", "prisma_ops", "migrate", "plugins", "module_utils")
    shutil.copytree(REPO / "plugins" / "module_utils", target)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return root


def run_python_as_nobody(code: str) -> subprocess.CompletedProcess:
    """Run `python -c code` as `nobody` when root (as the current user otherwise), module_utils importable."""
    python = sys.executable
    kwargs = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam(USER)
        python = SYSTEM_PYTHON

        def demote() -> None:
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)

        kwargs["preexec_fn"] = demote
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": _module_utils_copy(), "LANG": "C.UTF-8"}
    return subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, cwd="/", timeout=60,
                          check=False, **kwargs)
