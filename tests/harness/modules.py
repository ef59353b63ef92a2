"""Run the collection's modules the way Ansible does, without a playbook, for fast integration tests.

The module file runs as a real AnsibleModule with its arguments on stdin (argspec validation,
no_log masking and check mode all apply); the JSON it prints is the task result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".collections"


def module_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(COLLECTIONS)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def run_module(name: str, args: dict, check_mode: bool = False, diff: bool = False, python: str | None = None,
               timeout: float = 120) -> dict:
    """Run plugins/modules/<name>.py with args; return its JSON result plus `_stdout`/`_stderr`/`_rc`."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    payload["_ansible_diff"] = diff
    payload["_ansible_tmpdir"] = None
    payload["_ansible_remote_tmp"] = "/tmp"
    argv = [python or sys.executable, "-m", "ansible_collections.prisma_ops.migrate.plugins.modules." + name]
    proc = subprocess.run(argv, input=json.dumps({"ANSIBLE_MODULE_ARGS": payload}), capture_output=True, text=True,
                          env=module_env(), timeout=timeout, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = {"failed": True, "msg": "module printed no JSON"}
    result["_stdout"], result["_stderr"], result["_rc"] = proc.stdout, proc.stderr, proc.returncode
    return result
