"""docs/runbook.md stays true to the code: every command of its ```sh blocks is checked here.

- `ansible-playbook` lines: the playbook exists, every -e variable is one the play or its role's
  meta/argument_specs.yml declares, with a value of the declared type (and choices), and the line passes
  `ansible-playbook --syntax-check` with exactly those arguments. What each playbook does with them is proven
  end to end by test_recover_local.py, test_restore_playbook.py and the roles' other tests.
- `ansible` ad-hoc lines and every other shell line (psql) run for real, as written, against a real P3009 made
  with the real Prisma CLI on a real PostgreSQL while an idle session holds Prisma's advisory lock: the lock
  query must name that session's pid, and the terminate command must free the lock.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.prisma_ops.migrate.plugins.module_utils.recovery_plan import OVERRIDE_ACTIONS
from tests.harness.pgcluster import wait_for
from tests.harness.scenario import make_p3009

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "runbook.md"
BIN = Path(sys.executable).parent
PLAYBOOK_ROLES = {"playbooks/recover.yml": "recover", "playbooks/restore.yml": "restore"}
PLAY_VARS = {"recover": {"recover_hosts"}, "restore": {"restore_hosts"}}
SAMPLE = {"HOST": "runbook-host", "DB": "schooliat", "APP": "/opt/schooliat/repo/Backend", "PID": "12345"}


def commands() -> list:
    """Every command of the runbook's sh blocks (comments and blank lines aside), in order."""
    text = RUNBOOK.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                found.append(line.strip())
    return found


def kind(command: str) -> str:
    if command.startswith("ansible-playbook "):
        return "playbook"
    if command.startswith("ansible "):
        return "adhoc"
    return "shell"


def expand(token: str, values: dict) -> str:
    return re.sub(r"\$\{?([A-Z]+)\}?", lambda m: values.get(m.group(1), m.group(0)), token)


def parse_playbook_command(command: str, values: dict) -> dict:
    argv = [expand(t, values) for t in shlex.split(command)]
    assert argv[0] == "ansible-playbook"
    parsed = {"playbook": argv[1], "limit": None, "check": False, "extra": {}, "argv": argv}
    i = 2
    while i < len(argv):
        arg = argv[i]
        if arg == "-l":
            parsed["limit"] = argv[i + 1]
            i += 2
        elif arg == "--check":
            parsed["check"] = True
            i += 1
        elif arg == "-e":
            value = argv[i + 1]
            if value.startswith("{"):
                parsed["extra"].update(json.loads(value))
            else:
                key, sep, val = value.partition("=")
                assert sep and " " not in value, "one key=value per -e: %r" % value
                parsed["extra"][key] = val
            i += 2
        else:
            raise AssertionError("the runbook uses an option the test does not know: %s in %s" % (arg, command))
    return parsed


def role_options(role: str) -> dict:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


def check_type(name: str, value, option: dict) -> None:
    kind_ = option.get("type", "str")
    if kind_ == "bool":
        assert value in ("true", "false", True, False), "%s=%r is not a bool" % (name, value)
    elif kind_ == "int":
        assert isinstance(value, int) or str(value).isdigit(), "%s=%r is not an int" % (name, value)
    elif kind_ == "dict":
        assert isinstance(value, dict), "%s must be given as JSON: -e '{\"%s\": {...}}'" % (name, name)
    elif kind_ == "list":
        assert isinstance(value, list), "%s must be a JSON list" % name
    else:
        assert isinstance(value, str), "%s=%r is not a string" % (name, value)
    if option.get("choices"):
        assert value in option["choices"], "%s=%r is not one of %s" % (name, value, option["choices"])


def test_the_runbook_has_a_command_for_each_situation():
    text = RUNBOOK.read_text(encoding="utf-8")
    for heading in ("P3009", "Check mode first", "partial or unknown", "lock is held", "wrong-database guard",
                    "Restoring"):
        assert re.search(r"^## .*%s" % re.escape(heading), text, re.M), heading
    found = commands()
    assert {kind(c) for c in found} == {"playbook", "adhoc", "shell"}
    for command in found:
        if kind(command) == "shell":
            # Only these shell commands are run by the live test below; anything else must be added there.
            assert command.startswith(("psql ", "set -a ")), command


@pytest.mark.parametrize("command", [c for c in commands() if kind(c) == "playbook"])
def test_each_playbook_command_names_real_variables_and_passes_syntax_check(command):
    parsed = parse_playbook_command(command, SAMPLE)
    assert parsed["playbook"] in PLAYBOOK_ROLES, "unknown playbook %s" % parsed["playbook"]
    assert (REPO / parsed["playbook"]).is_file()
    assert parsed["limit"] == SAMPLE["HOST"], "every command targets $HOST: %s" % command
    role = PLAYBOOK_ROLES[parsed["playbook"]]
    options = role_options(role)
    for name, value in parsed["extra"].items():
        assert name in options or name in PLAY_VARS[role], "%s is not a variable of the %s role" % (name, role)
        if name in options:
            check_type(name, value, options[name])
    if "recover_overrides" in parsed["extra"]:
        for value in parsed["extra"]["recover_overrides"].values():
            assert value in OVERRIDE_ACTIONS, "override %r is refused by the recover plan" % value
    argv = [str(BIN / "ansible-playbook"), "-i", "%s," % SAMPLE["HOST"], "--syntax-check"] + parsed["argv"][1:]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.postgres
@pytest.mark.prisma
@pytest.mark.slow
@pytest.mark.integration
def test_adhoc_and_psql_commands_work_on_a_real_p3009_with_the_lock_held(project, db, tmp_path):
    make_p3009(project, db, "not_applied")
    # The app's .env as Prisma has it, with ?schema=: the runbook's psql lines must cope with it.
    (project.root / ".env").write_text('DATABASE_URL="%s"\n' % db.url(schema="public"))
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"runbook-host": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    holder = db.connect()
    holder.cursor().execute("SELECT pg_advisory_lock(72707369)")  # then idle, as a hung deploy leaves it
    pid = holder.get_backend_pid()
    values = {"HOST": "runbook-host", "DB": db.name, "APP": str(project.root), "PID": str(pid)}
    env = dict(os.environ, ANSIBLE_INVENTORY=str(inventory), ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               PATH="%s:%s" % (BIN, os.environ["PATH"]), **values)
    try:
        for command in [c for c in commands() if kind(c) == "adhoc"]:
            proc = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=300, check=False)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            result = json.loads(proc.stdout.split("=>", 1)[1])
            assert result["deploy_blocked"] is True and result["lock"]["pid"] == pid
            assert result["evidence"][result["failed_migrations"][0]]["verdict"] == "not_applied"
            assert db.owner.password not in proc.stdout + proc.stderr

        shell = [c for c in commands() if kind(c) == "shell"]
        terminate = [c for c in shell if "pg_terminate_backend" in c]
        script = "set -euo pipefail\n" + "\n".join(c for c in shell if c not in terminate) + "\n"
        proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        holders = [line for line in proc.stdout.splitlines() if line.strip()]
        assert len(holders) == 1 and holders[0].startswith("%d|%s|" % (pid, db.owner.name)), proc.stdout
        assert "|idle|" in holders[0]

        assert len(terminate) == 1
        script = "set -euo pipefail\n" + "\n".join(c for c in shell if c not in terminate) + "\n" + terminate[0] + "\n"
        proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines()[-1] == "t"
        assert wait_for(lambda: not db.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                                               "AND objid = 72707369 AND granted"), timeout=10)
    finally:
        holder.close()
