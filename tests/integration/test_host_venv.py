"""The host_venv role run for real (local connection, the host's /usr/bin/python3, wheels from the controller's
cache): it only ever replaces a virtualenv it built, never replaces one in check mode, and two runs at once on a
fresh host build one virtualenv between them and both succeed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
- name: Build the modules' virtualenv
  hosts: all
  gather_facts: false
  roles:
    - prisma_ops.migrate.host_venv
"""


def inventory(tmp_path: Path, venv: Path) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"all": {"hosts": {"venvhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "host_venv_path": str(venv)}}}}))
    (tmp_path / "host_venv.yml").write_text(PLAYBOOK)
    return path


def run(tmp_path: Path, venv: Path, *args: str) -> subprocess.Popen:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory(tmp_path, venv)),
            str(tmp_path / "host_venv.yml"), *args]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out = proc.communicate(timeout=900)[0]  # a safety net far above the ~20 s a build takes
    return proc.returncode, out


def snapshot(root: Path) -> dict:
    """Every path under root with its kind and content (links by target), to prove nothing changed."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_file():
            found[rel] = ("file", path.read_bytes(), path.stat().st_mtime_ns)
        else:
            found[rel] = ("dir",)
    return found


def leftovers(venv: Path) -> list[str]:
    return sorted(p.name for p in venv.parent.iterdir()
                  if p.name != venv.name and p.name.lstrip(".").startswith(venv.name) and not p.name.endswith(".lock"))


def tagged_interpreter(venv: Path) -> Path:
    [tagged] = list((venv / "bin").glob("python-prisma-ops-*"))
    return tagged


def imports(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import psycopg2, pglast"], check=False).returncode == 0


@pytest.mark.parametrize("check", [False, True], ids=["run", "check-mode"])
def test_a_directory_it_did_not_build_is_refused_and_left_as_it_was(tmp_path, check):
    venv = tmp_path / "opt" / "app"
    (venv / "src").mkdir(parents=True)
    (venv / "src" / "server.js").write_text("console.log('the app')\n")
    (venv / ".env").write_text("DATABASE_URL=postgresql://app:secret@127.0.0.1/app\n")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")  # even one that looks like a virtualenv
    before = snapshot(tmp_path / "opt")

    code, out = finish(run(tmp_path, venv, *(["--check"] if check else [])))

    assert code != 0, out
    assert "not a virtualenv this role built, so nothing there was touched" in out, out
    assert "Move it away, or set host_venv_path" in out, out
    assert snapshot(tmp_path / "opt") == before
    assert leftovers(venv) == []


def test_a_symbolic_link_is_refused_and_its_target_kept(tmp_path):
    target = tmp_path / "backups"
    target.mkdir()
    (target / "dump.sql").write_text("-- a backup\n")
    (tmp_path / "opt").mkdir()
    venv = tmp_path / "opt" / "venv"
    venv.symlink_to(target)

    code, out = finish(run(tmp_path, venv))

    assert code != 0 and "holds a symbolic link" in out, out
    assert venv.is_symlink() and (target / "dump.sql").read_text() == "-- a backup\n"


def test_two_runs_at_once_build_one_virtualenv_and_both_succeed(tmp_path):
    venv = tmp_path / "opt" / "venv"
    first, second = (tmp_path / "one", tmp_path / "two")
    first.mkdir()
    second.mkdir()
    procs = [run(first, venv), run(second, venv)]
    results = [finish(p) for p in procs]

    for code, out in results:
        assert code == 0, out
    assert imports(tagged_interpreter(venv))
    assert (venv / ".prisma_ops-packages").read_text() == "pip==26.3 psycopg2-binary==2.9.13 pglast==8.8"
    assert leftovers(venv) == [], "half-built virtualenvs or copied wheels left behind"


def test_check_mode_builds_only_where_nothing_exists_and_never_replaces(tmp_path):
    venv = tmp_path / "opt" / "venv"
    code, out = finish(run(tmp_path, venv, "--check"))
    assert code == 0, out  # a first --check can gather evidence: a new virtualenv, nothing replaced
    tagged = tagged_interpreter(venv)
    assert imports(tagged)

    # Stale (built with other packages: the interpreter named for these is gone): check mode leaves it as it is.
    tagged.unlink()
    before = snapshot(venv)
    code, out = finish(run(tmp_path, venv, "--check"))
    assert code != 0 and "check mode does not replace it" in out, out
    assert snapshot(venv) == before and leftovers(venv) == []

    # A real run rebuilds it in place, and a second run changes nothing.
    code, out = finish(run(tmp_path, venv))
    assert code == 0, out
    assert imports(tagged_interpreter(venv)) and leftovers(venv) == []
    code, out = finish(run(tmp_path, venv))
    assert code == 0 and "changed=0" in out, out
