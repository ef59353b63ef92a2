"""The Molecule scenario (molecule/default) over the lab: check mode, converge, verify, idempotence.

Marker `lab`: `make test` runs it after the other lab tests (`pytest -m lab`, serially), since the
scenario rebuilds every lab host's failure scenario at its start and leaves the hosts recovered.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ACTIONS = ("create", "prepare", "check", "side_effect", "converge", "verify", "idempotence", "destroy")

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.slow]


def test_molecule_scenario_over_the_lab():
    # Molecule runs ansible-config and ansible-playbook from PATH: the project venv's.
    env = dict(os.environ, NO_COLOR="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0",
               PATH="%s:%s" % (REPO / ".venv" / "bin", os.environ.get("PATH", "")))
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "molecule"), "test"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=2400, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, output[-8000:]
    # Every step ran and passed; idempotence's own check is that the second converge changed nothing.
    for action in ACTIONS:
        assert re.search(r"default ➜ %s: Executed: Successful" % action, output), (action, output[-8000:])
