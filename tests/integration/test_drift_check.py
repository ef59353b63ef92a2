"""playbooks/drift_check.yml over a fleet of local hosts (ansible_connection=local), each its own real database and
real Prisma project brought to its state with the real Prisma CLI; the reports are parsed back, and the HTML page
is loaded in headless Chromium.

Hosts: healthy (in sync, a real pg_backup backup, temporary scratch database via CREATEDB), p3009 (a real failed
deploy), edited (a migration edited after apply), pending (a folder never deployed), handmade (a column added by
hand, replayed in a shadow_url database), oncontroller (the same drift, no CREATEDB and no shadow_url: replayed on
the controller), noscratch (no CREATEDB, no shadow_url, controller replay off), broken (a missing .env), and
down (SSH to a closed loopback port: unreachable).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.harness.modules import run_module
from tests.harness.prisma import PrismaProject
from tests.harness.scenario import GUARDIANS, INIT, add, make_p3009, write_env_file

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = REPO / "tests" / "output" / "artefacts"
FAIL_ON = ["failed", "modified", "pending", "schema", "error", "unreachable"]


def playbook(inventory: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), "playbooks/drift_check.yml", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})


def recap(proc) -> dict:
    found = {}
    for host, ok, changed, unreachable, failed in re.findall(
            r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout, re.M):
        found[host] = {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
    assert found, proc.stdout + proc.stderr
    return found


def host_vars(project: PrismaProject, report_dir: Path, **extra) -> dict:
    hostvars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,  # has psycopg2 and pglast
        "host_venv_manage": False,
        "drift_check_project_dir": str(project.root),
        "drift_check_report_dir": str(report_dir),
        "drift_check_fail_on": FAIL_ON,
    }
    hostvars.update(extra)
    return hostvars


def write_inventory(path: Path, hosts: dict) -> Path:
    path.write_text(json.dumps({"fleet": {"hosts": hosts}}, indent=2))
    return path


def new_host(pg_cluster, root: Path, name: str, createdb: bool = False):
    role = pg_cluster.create_role("app_%s_%d" % (name, os.getpid()) + os.urandom(3).hex(), createdb=createdb)
    db = pg_cluster.create_database(owner=role)
    project = PrismaProject.create(root / name, db.url())
    write_env_file(project)
    return db, project


def deploy(project, *names):
    add(project, *names)
    out = project.deploy()
    assert out.returncode == 0, out.output
    return out


@pytest.fixture(scope="module")
def fleet(pg_cluster, tmp_path_factory):
    """Build every host's state with the real CLI, then run the playbook once over all of them."""
    root = tmp_path_factory.mktemp("drift")
    reports = root / "reports"
    hosts, dbs = {}, {}

    db, project = new_host(pg_cluster, root, "healthy", createdb=True)
    deploy(project, INIT, GUARDIANS)
    backup = run_module("pg_backup", {"database_url": db.url(), "backup_dir": str(root / "backups")})
    assert not backup.get("failed"), backup
    hosts["healthy"] = host_vars(project, reports, drift_check_backup_dir=str(root / "backups"))
    dbs["healthy"] = db

    db, project = new_host(pg_cluster, root, "p3009", createdb=True)
    make_p3009(project, db, "not_applied")
    hosts["p3009"] = host_vars(project, reports, drift_check_backup_dir=str(root / "empty_backups"))
    dbs["p3009"] = db

    db, project = new_host(pg_cluster, root, "edited", createdb=True)
    deploy(project, INIT)
    script = project.migrations_dir / INIT / "migration.sql"
    script.write_text(script.read_text() + "\n-- edited after apply\n")
    hosts["edited"] = host_vars(project, reports)
    dbs["edited"] = db

    db, project = new_host(pg_cluster, root, "pending", createdb=True)
    deploy(project, INIT)
    add(project, GUARDIANS)
    hosts["pending"] = host_vars(project, reports)
    dbs["pending"] = db

    db, project = new_host(pg_cluster, root, "handmade")
    deploy(project, INIT, GUARDIANS)
    db.execute('ALTER TABLE "User" ADD COLUMN "nickname" text')
    shadow = pg_cluster.create_database(owner=db.owner)
    hosts["handmade"] = host_vars(project, reports, drift_check_shadow_url=shadow.url())
    dbs["handmade"], dbs["handmade_shadow"] = db, shadow

    db, project = new_host(pg_cluster, root, "noscratch")
    deploy(project, INIT)
    hosts["noscratch"] = host_vars(project, reports, drift_check_controller_replay=False)
    dbs["noscratch"] = db

    # No CREATEDB and no shadow_url either, with the defaults: the folder is replayed on the controller.
    db, project = new_host(pg_cluster, root, "oncontroller")
    deploy(project, INIT, GUARDIANS)
    db.execute('ALTER TABLE "User" ADD COLUMN "nickname" text')
    hosts["oncontroller"] = host_vars(project, reports)
    dbs["oncontroller"] = db

    hosts["broken"] = host_vars(project, reports, drift_check_env_file=str(root / "no-such.env"))
    hosts["down"] = dict(host_vars(project, reports), ansible_connection="ssh", ansible_host="127.0.0.1", ansible_port=1,
                         ansible_ssh_common_args="-o ConnectTimeout=3 -o BatchMode=yes -o StrictHostKeyChecking=no")
    del hosts["down"]["host_venv_manage"]  # the default: the check is its first remote task, and says "unreachable"

    before = {name: d.execute("SELECT id, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY id")
              for name, d in dbs.items() if name != "handmade_shadow"}
    inventory = write_inventory(root / "inventory.json", hosts)
    started = time.monotonic()
    proc = playbook(inventory)
    elapsed = time.monotonic() - started
    yield {"proc": proc, "reports": reports, "inventory": inventory, "dbs": dbs, "before": before, "elapsed": elapsed,
           "root": root, "hosts": hosts}
    for d in dbs.values():
        pg_cluster.drop_database(d.name)


def test_fail_on_fails_exactly_the_drifting_hosts(fleet):
    proc = fleet["proc"]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    counts = recap(proc)
    failed = sorted(h for h, c in counts.items() if c["failed"])
    assert failed == ["broken", "down", "edited", "handmade", "oncontroller", "p3009", "pending"], proc.stdout
    assert counts["healthy"]["failed"] == 0 and counts["noscratch"]["failed"] == 0
    assert all(c["changed"] == 0 for c in counts.values())
    assert re.search(r"drift on p3009 \(failed, schema; drift_check_fail_on: failed, modified", proc.stdout)
    # Read-only: every history is exactly as before.
    for name, rows in fleet["before"].items():
        assert fleet["dbs"][name].execute("SELECT id, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY id") == rows


def test_fleet_json_reports_each_kind_of_drift(fleet):
    data = json.loads((fleet["reports"] / "fleet.json").read_text())
    hosts = {h["host"]: h for h in data["hosts"]}
    assert set(hosts) == set(fleet["hosts"])
    assert hosts["healthy"]["status"] == "ok" and hosts["healthy"]["findings"] == []
    assert hosts["healthy"]["checks"]["schema"]["checked"] is True
    assert hosts["healthy"]["checks"]["schema"]["database"] == "temporary"
    assert hosts["healthy"]["checks"]["schema"]["replayed"] == 2
    assert hosts["healthy"]["checks"]["operations"]["backup"]["age_seconds"] < 600
    assert hosts["p3009"]["kinds"] == ["failed", "schema", "backup"]
    assert [f["object"] for f in hosts["p3009"]["findings"] if f["kind"] == "failed"] == [GUARDIANS]
    assert {"table", "public.Guardian", "missing"} <= {
        v for f in hosts["p3009"]["findings"] if f["kind"] == "schema" for v in (f["object_type"], f["object"], f["change"])}
    assert hosts["edited"]["kinds"] == ["modified"] and hosts["edited"]["findings"][0]["object"] == INIT
    assert hosts["pending"]["kinds"][0] == "pending" and hosts["pending"]["findings"][0]["object"] == GUARDIANS
    schema = hosts["handmade"]["checks"]["schema"]
    assert schema["database"] == "shadow_url" and schema["count"] == 1
    assert schema["findings"] == [{"kind": "schema", "object_type": "column", "change": "extra",
                                   "object": "public.User.nickname",
                                   "detail": "column public.User.nickname is in the live schema but not in the "
                                             "migrations (text)"}]
    oncontroller = hosts["oncontroller"]["checks"]["schema"]
    assert oncontroller["database"] == "controller" and oncontroller["checked"] is True, oncontroller
    assert oncontroller["replayed"] == 2 and oncontroller["findings"] == schema["findings"], oncontroller
    assert hosts["oncontroller"]["kinds"] == ["schema"] and hosts["oncontroller"]["status"] == "failing"
    noscratch = hosts["noscratch"]
    assert noscratch["status"] == "not_checked" and noscratch["kinds"] == ["schema_not_checked"]
    assert noscratch["checks"]["schema"]["checked"] is False
    assert "user %r may not create a temporary database (no CREATEDB)" % fleet["dbs"]["noscratch"].owner.name in \
        noscratch["checks"]["schema"]["reason"]
    assert "schema drift not checked: no scratch database: no shadow_url" in noscratch["findings"][0]["detail"]
    assert hosts["broken"]["kinds"] == ["error"] and "no-such.env" in hosts["broken"]["summary"]
    assert hosts["down"]["kinds"] == ["unreachable"]
    assert sorted(data["failing_hosts"]) == ["broken", "down", "edited", "handmade", "oncontroller", "p3009", "pending"]
    per_host = json.loads((fleet["reports"] / "hosts" / "handmade.json").read_text())
    assert per_host["failing_kinds"] == ["schema"]
    # The shadow database is left empty, and no temporary database is left behind.
    assert fleet["dbs"]["handmade_shadow"].execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'") == [(0,)]
    assert fleet["dbs"]["healthy"].execute("SELECT datname FROM pg_database WHERE datname LIKE 'prisma_ops_shadow_%'") == []


def test_no_secret_in_output_or_reports(fleet):
    texts = [fleet["proc"].stdout, fleet["proc"].stderr]
    texts += [p.read_text() for p in fleet["reports"].rglob("*") if p.is_file()]
    for name, d in fleet["dbs"].items():
        for text in texts:
            assert d.owner.password not in text, name
            assert d.url() not in text


def test_junit_has_a_case_per_host_and_check(fleet):
    root = ET.parse(fleet["reports"] / "junit.xml").getroot()
    suites = {s.get("name"): {c.get("name"): c for c in s.findall("testcase")} for s in root.findall("testsuite")}
    assert set(suites) == set(fleet["hosts"])
    assert all(list(cases) == ["history", "schema", "operations"] for cases in suites.values())
    assert suites["healthy"]["schema"].find("failure") is None and suites["healthy"]["schema"].find("skipped") is None
    assert GUARDIANS in suites["p3009"]["history"].find("failure").text
    assert "public.User.nickname" in suites["handmade"]["schema"].find("failure").text
    assert suites["noscratch"]["schema"].find("skipped").get("message").startswith("schema not checked: no scratch database")
    assert suites["down"]["history"].find("error") is not None


def test_prometheus_textfile_has_the_gauges(fleet):
    text = (fleet["reports"] / "prisma_drift.prom").read_text()
    values = dict(re.findall(r'^(prisma_drift_\w+\{host="[^"]+"\}) (\S+)$', text, re.M))
    assert values['prisma_drift_failed_migrations{host="p3009"}'] == "1"
    assert values['prisma_drift_pending_migrations{host="pending"}'] == "1"
    assert values['prisma_drift_modified_migrations{host="edited"}'] == "1"
    assert values['prisma_drift_schema_differences{host="handmade"}'] == "1"
    assert values['prisma_drift_schema_differences{host="healthy"}'] == "0"
    assert values['prisma_drift_schema_checked{host="noscratch"}'] == "0"
    assert values['prisma_drift_lock_held{host="healthy"}'] == "0"
    assert 0 <= int(values['prisma_drift_backup_age_seconds{host="healthy"}']) < 600
    assert values['prisma_drift_backup_age_seconds{host="p3009"}'] == "+Inf"
    assert values['prisma_drift_up{host="down"}'] == "0"
    assert re.search(r"^prisma_drift_report_timestamp_seconds \d+$", text, re.M)


def test_markdown_summary(fleet):
    text = (fleet["reports"] / "summary.md").read_text()
    assert "| healthy | OK | OK | OK | OK | no drift |" in text
    assert re.search(r"^\| noscratch \| NOT CHECKED \| OK \| NOT CHECKED \| OK \|", text, re.M)
    assert "- `schema` **(fails)** column public.User.nickname is in the live schema" in text


def test_html_in_headless_chromium(fleet, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: run make setup (scripts/setup.sh installs Debian's chromium)"
    page = fleet["reports"] / "index.html"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "drift_check_report.png"
    if shot.exists():
        shot.unlink()
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--user-data-dir=%s" % (tmp_path / "profile")]
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    rows = dict(re.findall(r'<tr class="host" id="[^"]+" data-host="([^"]+)" data-status="([^"]+)"', html))
    assert rows == {"healthy": "ok", "p3009": "failing", "edited": "failing", "pending": "failing",
                    "handmade": "failing", "oncontroller": "failing", "noscratch": "not_checked", "broken": "error",
                    "down": "error"}
    assert html.count("<details") == len(rows)
    assert "<details open=\"\"><summary>p3009:" in html  # failing hosts open, as the browser parsed them
    assert "schema drift not checked: no scratch database" in html
    assert "column public.User.nickname is in the live schema but not in the migrations" in html
    shot_proc = subprocess.run(base + ["--window-size=1400,1800", "--screenshot=%s" % shot, page.as_uri()],
                               capture_output=True, text=True, timeout=120, check=False)
    assert shot_proc.returncode == 0, shot_proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000


def test_check_mode_reads_only_and_still_reports(pg_cluster, tmp_path):
    db, project = new_host(pg_cluster, tmp_path, "checkmode", createdb=True)
    make_p3009(project, db, "not_applied")
    before = db.execute("SELECT * FROM _prisma_migrations ORDER BY id")
    reports = tmp_path / "reports"
    inventory = write_inventory(tmp_path / "inv.json", {"checkmode": host_vars(project, reports, drift_check_report_keep=3)})

    proc = playbook(inventory, "--check")
    assert proc.returncode == 2 and recap(proc)["checkmode"]["failed"] == 1, proc.stdout
    assert db.execute("SELECT * FROM _prisma_migrations ORDER BY id") == before
    latest = reports / "latest"
    assert json.loads((latest / "fleet.json").read_text())["failing_hosts"] == ["checkmode"]

    # Nothing in fail_on: the same drift is reported, and the run passes.
    proc = playbook(inventory, "--check", "-e", '{"drift_check_fail_on": []}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checkmode: DRIFT - failed: 1" in proc.stdout
    runs = sorted(p.name for p in reports.iterdir() if p.name != "latest")
    assert len(runs) == 2 and os.readlink(latest) == runs[-1]
    pg_cluster.drop_database(db.name)


def test_an_unknown_fail_on_kind_is_one_clear_error(pg_cluster, tmp_path):
    db, project = new_host(pg_cluster, tmp_path, "badkind")
    deploy(project, INIT)
    inventory = write_inventory(tmp_path / "inv.json", {"badkind": host_vars(project, tmp_path / "r",
                                                                             drift_check_fail_on=["edited"])})
    proc = playbook(inventory)
    assert proc.returncode == 2
    assert "fail_on: unknown kind 'edited'; valid kinds are history_relation, provider_mismatch, failed, pending, modified" in proc.stdout
    pg_cluster.drop_database(db.name)


def test_never_takes_prismas_lock_and_reports_a_stuck_holder(pg_cluster, tmp_path):
    db, project = new_host(pg_cluster, tmp_path, "locked", createdb=True)
    deploy(project, INIT)
    # Proof by construction: in this database nobody but superusers may call any advisory-lock function, so a drift
    # check that tried to take (or try) Prisma's lock would fail with "permission denied".
    db.execute("REVOKE EXECUTE ON FUNCTION pg_advisory_lock(bigint), pg_try_advisory_lock(bigint), "
               "pg_advisory_xact_lock(bigint), pg_try_advisory_xact_lock(bigint), pg_advisory_lock_shared(bigint), "
               "pg_try_advisory_lock_shared(bigint) FROM PUBLIC", superuser=True)
    # The holder below is another user: its session start (the lock's age) is visible with pg_read_all_stats.
    db.execute('GRANT pg_read_all_stats TO "%s"' % db.owner.name, superuser=True)
    holder = db.connect(superuser=True)
    seen = []
    stop = threading.Event()

    def watch() -> None:
        # Any other session holding or waiting for the lock while the check runs would show here.
        conn = db.connect(superuser=True)
        try:
            while not stop.is_set():
                with conn.cursor() as cur:
                    cur.execute("SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND objid = 72707369")
                    seen.extend(cur.fetchall())
                time.sleep(0.05)
        finally:
            conn.close()
    try:
        with holder.cursor() as cur:
            cur.execute("SET application_name = 'stuck deploy'")
            cur.execute("SELECT pg_advisory_lock(72707369), pg_backend_pid()")
            holder_pid = cur.fetchone()[1]
        watcher = threading.Thread(target=watch)
        watcher.start()
        inventory = write_inventory(tmp_path / "inv.json", {"locked": host_vars(
            project, tmp_path / "reports", drift_check_lock_max_age="0", drift_check_fail_on=["lock"])})
        started = time.monotonic()
        proc = playbook(inventory, timeout=120)
        elapsed = time.monotonic() - started
        stop.set()
        watcher.join()
    finally:
        holder.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    host = json.loads((tmp_path / "reports" / "fleet.json").read_text())["hosts"][0]
    assert host["kinds"] == ["lock"], host  # not "error": no advisory-lock function was called
    lock = host["checks"]["operations"]["lock"]
    assert lock["held"] is True and lock["holder"]["pid"] == holder_pid and lock["waiters"] == 0, lock
    assert lock["age_seconds"] is not None, lock
    assert lock["holder"]["application_name"] == "stuck deploy"
    assert "Prisma's advisory lock held for" in host["findings"][0]["detail"], lock
    assert seen and {pid for pid, _granted in seen} == {holder_pid}
    assert elapsed < 60
    prom = (tmp_path / "reports" / "prisma_drift.prom").read_text()
    assert re.search(r'^prisma_drift_lock_age_seconds\{host="locked"\} \d+$', prom, re.M), prom
    pg_cluster.drop_database(db.name)


def test_builds_the_host_venv_only_when_its_interpreter_is_missing(pg_cluster, tmp_path):
    """drift_check runs the check with the virtualenv's interpreter at once, and builds the virtualenv (host_venv)
    only when that interpreter is missing: on first contact, and when the one named for the pinned packages is gone
    (a virtualenv built with other packages), or when a package is missing from it. A ready host runs no host_venv
    task on the host at all."""
    db, project = new_host(pg_cluster, tmp_path, "venvhost", createdb=True)
    deploy(project, INIT)
    venv = tmp_path / "host venv"  # a space, as a path on a real host might have
    hostvars = dict(host_vars(project, tmp_path / "reports"), host_venv_path=str(venv))
    del hostvars["host_venv_manage"]  # the default (true), as on the lab and in production
    inventory = write_inventory(tmp_path / "inv.json", {"venvhost": hostvars})

    def checked(proc) -> dict:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        [record] = json.loads((tmp_path / "reports" / "fleet.json").read_text())["hosts"]
        # The schema replay parses with pglast and connects with psycopg2: both came from the host venv.
        assert record["status"] == "ok" and record["checks"]["schema"]["checked"] is True, record
        return record

    first = playbook(inventory)
    checked(first)
    assert "Host venv | Build the virtualenv beside the live one" in first.stdout, first.stdout
    tagged = sorted(p.name for p in (venv / "bin").glob("python-prisma-ops-*"))
    assert len(tagged) == 1 and os.readlink(venv / "bin" / tagged[0]) == "python", tagged
    assert (venv / ".prisma_ops-packages").read_text() == "pip==26.3 psycopg2-binary==2.9.13 pglast==8.8"

    ready = playbook(inventory)
    checked(ready)
    assert "Is the virtualenv there" not in ready.stdout and "Build the virtualenv beside" not in ready.stdout, ready.stdout
    assert recap(ready)["venvhost"]["changed"] == 0

    # A virtualenv built with other packages lacks the interpreter named for these: it is built again, in place.
    (venv / "bin" / tagged[0]).unlink()
    stale = playbook(inventory)
    checked(stale)
    assert "Host venv | Build the virtualenv beside the live one" in stale.stdout, stale.stdout
    assert sorted(p.name for p in (venv / "bin").glob("python-prisma-ops-*")) == tagged
    assert [p.name for p in tmp_path.iterdir() if p.name.lstrip(".").startswith("host venv.")] == [".host venv.lock"]

    # The interpreter is there but a package went missing: the module says so, and the virtualenv is built again.
    [psycopg2_dir] = venv.glob("lib/python3*/site-packages/psycopg2")
    shutil.rmtree(psycopg2_dir)
    broken = playbook(inventory)
    checked(broken)
    assert "Host venv | Build the virtualenv beside the live one" in broken.stdout, broken.stdout
    assert list(venv.glob("lib/python3*/site-packages/psycopg2/__init__.py"))
    pg_cluster.drop_database(db.name)
