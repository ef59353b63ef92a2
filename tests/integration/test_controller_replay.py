"""The replay on the controller, through ansible-playbook and the real action plugin: hosts whose app role has no
CREATEDB and no shadow_url (most production hosts) still get both methods. The controller's throwaway server is
real (initdb from this machine's PostgreSQL), the failed rows come from the real Prisma CLI, and a fleet that shares
one migrations folder replays it once (the cache).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.scenario import GUARDIANS, make_p3009

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
- name: Evidence for every host
  hosts: all
  gather_facts: false
  tasks:
    - name: Read the history with evidence
      prisma_ops.migrate.prisma_migration_info:
        database_url: "{{ url }}"
        migrations_dir: "{{ migrations }}"
        evidence: true
        controller_replay: "{{ replay }}"
      register: info
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ info | to_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0600"
"""


def run_fleet(tmp_path: Path, hosts: dict, replay: bool = True) -> dict:
    """{host: module result} of the playbook over `hosts` ({name: (url, migrations folder)})."""
    out = tmp_path / "results"
    out.mkdir(exist_ok=True)
    inventory = {"all": {"hosts": {name: {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "url": url, "migrations": str(folder), "out": str(out), "replay": replay} for name, (url, folder) in hosts.items()}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "evidence.yml").write_text(PLAYBOOK)
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "inventory.json"),
                           str(tmp_path / "evidence.yml")], cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "PRISMA_OPS_REPLAY_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return {name: json.loads((out / ("%s.json" % name)).read_text()) for name in hosts}


def replays_cached(tmp_path: Path) -> list:
    return sorted(p.name for p in (tmp_path / "cache").glob("*.json"))


@pytest.mark.parametrize("shape, verdict, status", [("not_applied", "not_applied", "matches_before"),
                                                    ("partial", "partial", "differs"),
                                                    ("applied", "applied", "matches_after")])
def test_a_host_without_a_scratch_database_gets_the_replay_on_the_controller(project, db, tmp_path, shape, verdict,
                                                                             status):
    make_p3009(project, db, shape)
    by_host = run_fleet(tmp_path, {"app1": (db.url(), project.migrations_dir)})
    entry = by_host["app1"]["evidence"][GUARDIANS]
    assert entry["shadow"]["database"] == "controller", entry["shadow"]
    assert (entry["verdict"], entry["shadow"]["status"]) == (verdict, status), entry
    assert "replay_input" not in by_host["app1"]  # what the host sent stays on the controller

    # Without it, the same host has the probes alone (and the replay says why it did not run).
    alone = run_fleet(tmp_path, {"app1": (db.url(), project.migrations_dir)}, replay=False)["app1"]
    assert alone["evidence"][GUARDIANS]["shadow"]["status"] == "unavailable"


def test_a_fleet_sharing_one_folder_replays_it_once(project, db, pg_cluster, tmp_path):
    make_p3009(project, db, "partial")
    by_host = run_fleet(tmp_path, {"app%d" % i: (db.url(), project.migrations_dir) for i in range(1, 5)})
    verdicts = {host: (r["evidence"][GUARDIANS]["verdict"], r["evidence"][GUARDIANS]["shadow"]["database"])
                for host, r in by_host.items()}
    assert set(verdicts.values()) == {("partial", "controller")}, verdicts
    [cached] = replays_cached(tmp_path)
    stamp = (tmp_path / "cache" / cached).stat().st_mtime_ns
    # A second run finds it: the same result, nothing replayed again (the cache file is not rewritten).
    again = run_fleet(tmp_path, {"app1": (db.url(), project.migrations_dir)})
    assert again["app1"]["evidence"][GUARDIANS] == by_host["app1"]["evidence"][GUARDIANS]
    assert replays_cached(tmp_path) == [cached] and (tmp_path / "cache" / cached).stat().st_mtime_ns == stamp
    # And the controller keeps the scripts it was sent, private to its user.
    scripts = list((tmp_path / "cache" / "scripts").glob("*.sql"))
    assert len(scripts) == 2 and all(p.stat().st_mode & 0o077 == 0 for p in scripts)
    assert (tmp_path / "cache").stat().st_mode & 0o077 == 0


def test_an_extension_the_scratch_server_lacks_is_named_and_never_cached(tmp_path):
    """A migration creating an extension the controller's PostgreSQL does not have (postgis is not installed here):
    no replay, "unavailable" with the extension, the migration and the statement named (not a failed replay), and
    nothing cached, so installing the package later gives the replay."""
    import glob
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import script_digest
    from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.controller_replay import replay_on_controller
    assert not glob.glob("/usr/share/postgresql/*/extension/postgis.control"), "this test needs postgis absent"
    init = 'CREATE TABLE "Place" ("id" INTEGER NOT NULL);\n'
    geo = ('CREATE EXTENSION IF NOT EXISTS "postgis";\n'
           'ALTER TABLE "Place" ADD COLUMN "where" geometry(Point, 4326);\n')
    texts = {script_digest(t): t for t in (init, geo)}
    replay_input = {"texts": texts, "migrations": {"20240102000000_geo": {"scripts": [
        ["20240101000000_init", script_digest(init)], ["20240102000000_geo", script_digest(geo)]]}}}
    cache = tmp_path / "cache"

    results = replay_on_controller(replay_input, "public", 150000, str(cache))

    result = results["20240102000000_geo"]
    assert result.status == "unavailable" and result.database == "controller", result
    assert "no extension postgis (the failed migration, statement 1)" in result.message
    assert "install its package there" in result.message
    assert sorted(p.name for p in cache.glob("*.json")) == []
