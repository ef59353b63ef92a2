"""Issue 8's fault campaign on the lab's fault hosts (group lab_faults, docs/lab.md, docs/reliability.md).

Each test rebuilds its host's P3009 (`scripts/lab.sh reset-host`), injects one fault for real (PostgreSQL
stopped, sshd killed, two runs at once, a full backup disk, a wrong password, hostile names, -vvv), and then
checks with psql as the superuser: no history row lost or corrupted, the Student rows intact, the backups on
disk, and that the next normal `ansible-playbook playbooks/recover.yml -l HOST` recovers the host.

Run with `pytest -m lab tests/integration/test_faults.py` (serially: the tests share the fault hosts).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_SH = REPO / "scripts" / "lab.sh"
INVENTORY = REPO / "lab" / "inventory_faults.yml"
PLAYBOOK_BIN = Path(sys.executable).parent / "ansible-playbook"
BACKUPS = "/opt/schooliat/shared/backups"
GRADES = "20240301000000_grades"
LOCAL_MIGRATIONS = ["20240101000000_init", "20240201000000_students", GRADES, "20240401000000_notices"]

# The fault hosts only: make test-lab runs this file beside test_lab.py (-n 2 --dist loadfile).
pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.slow]


def run(argv: list, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


@pytest.fixture(scope="module")
def hosts():
    proc = run([str(LAB_SH), "up", "faults"], timeout=1800)
    assert proc.returncode == 0, "scripts/lab.sh up faults failed:\n" + proc.stdout + proc.stderr
    group = yaml.safe_load(INVENTORY.read_text())["lab_faults"]
    return {name: dict(group["vars"], name=name, **hv) for name, hv in group["hosts"].items()}


def reset(*names: str) -> None:
    proc = run([str(LAB_SH), "reset-host", *names], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def db_container(host: dict) -> str:
    return host.get("lab_db_container", host["name"])


def psql(host: dict, sql: str) -> list:
    """Rows (lists of text) from psql as the superuser over the database's own socket."""
    proc = run(["docker", "exec", "-i", db_container(host), "runuser", "-u", "postgres", "--", "psql", "-X", "-q",
                "-tA", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-p", str(host["lab_db_port"]), "-d", "schooliat"],
               input=sql, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines() if line]


def sh(host: dict, script: str, container: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return run(["docker", "exec", container or host["name"], "bash", "-c", script], timeout=timeout)


def history(host: dict) -> dict:
    """_prisma_migrations by id: every column as text."""
    rows = psql(host, "SELECT id, migration_name, checksum, coalesce(finished_at::text, '-'), "
                      "coalesce(rolled_back_at::text, '-'), started_at::text, applied_steps_count::text, "
                      "md5(coalesce(logs, '')) FROM _prisma_migrations ORDER BY started_at, id")
    return {r[0]: dict(zip(("name", "checksum", "finished", "rolled_back", "started", "steps", "logs"), r[1:]))
            for r in rows}


def students(host: dict) -> list:
    return psql(host, 'SELECT count(*), md5(string_agg(id || name || "schoolId", \',\' ORDER BY id)) FROM "Student"')


def pg_running(host: dict) -> bool:
    return sh(host, "pg_ctlcluster 15 main status >/dev/null", container=db_container(host)).returncode == 0


def pg_stop(host: dict) -> None:
    proc = sh(host, "pg_ctlcluster 15 main stop -m fast", container=db_container(host))
    assert proc.returncode == 0, proc.stderr


def pg_start(host: dict) -> None:
    if not pg_running(host):
        proc = sh(host, "pg_ctlcluster 15 main start", container=db_container(host))
        assert proc.returncode == 0, proc.stderr


def dumps(host: dict) -> list:
    proc = sh(host, "cd %s && ls -A" % BACKUPS)
    return sorted(n for n in proc.stdout.split() if n.endswith(".dump"))


def backup_entries(host: dict) -> list:
    return sorted(sh(host, "cd %s && ls -A" % BACKUPS).stdout.split())


def env_url(host: dict) -> str:
    text = sh(host, "cat %s" % host["lab_env_file"]).stdout
    return re.search(r'DATABASE_URL\s*=\s*"([^"]+)"', text).group(1)


def env_password(host: dict) -> str:
    return unquote(urlsplit(env_url(host)).password)


def playbook(host: dict, tmp_path: Path, *args: str, book: str = "recover.yml", limit: bool = True,
             env: dict | None = None, timeout: float = 420) -> subprocess.CompletedProcess:
    argv = [str(PLAYBOOK_BIN), "-i", str(INVENTORY), "playbooks/" + book,
            "-e", "recover_report_dir=%s" % (tmp_path / "reports")]
    if limit:
        argv += ["-l", host["name"]]
    argv += list(args)
    return run(argv, timeout=timeout, env=dict(os.environ, ANSIBLE_NOCOLOR="1", **(env or {})))


def recap(proc: subprocess.CompletedProcess, name: str) -> dict:
    match = re.search(r"^%s\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(name),
                      proc.stdout, re.M)
    assert match, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def failed_task(proc: subprocess.CompletedProcess, name: str) -> str:
    """The name of the task at which the host failed or became unreachable."""
    task = None
    for line in proc.stdout.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif re.match(r"^(fatal|failed): \[%s\]" % re.escape(name), line):
            return task or ""
    return ""


def assert_rows_kept(before: dict, after: dict) -> None:
    """No row lost, none corrupted: every row from before is there with the same name, checksum, start, steps,
    logs and finish; only a failed row may have gained rolled_back_at (a resolve --rolled-back)."""
    for row_id, row in before.items():
        assert row_id in after, "row %s (%s) was lost" % (row_id, row["name"])
        now = after[row_id]
        for key in ("name", "checksum", "started", "steps", "logs", "finished"):
            assert now[key] == row[key], (row_id, key, row[key], now[key])
        if row["rolled_back"] != "-":
            assert now["rolled_back"] == row["rolled_back"], (row_id, "rolled_back changed")


def assert_in_sync(host: dict) -> None:
    rows = history(host).values()
    assert not [r for r in rows if r["finished"] == "-" and r["rolled_back"] == "-"], list(rows)
    for name in LOCAL_MIGRATIONS:
        applied = [r for r in rows if r["name"] == name and r["finished"] != "-" and r["rolled_back"] == "-"]
        assert len(applied) == 1, (name, list(rows))
    # The real CLI agrees.
    proc = run(["docker", "exec", "-u", "app", "-w", host["lab_app_dir"],
                host.get("lab_app_container", host["name"]), "npx", "prisma", "migrate", "status"], timeout=120)
    assert proc.returncode == 0 and "up to date" in proc.stdout, proc.stdout + proc.stderr


def next_run_recovers(host: dict, tmp_path: Path, before: dict, data: list) -> dict:
    """The next normal run recovers the host: in sync, no row of `before` lost, data intact. Returns its report."""
    proc = playbook(host, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert_in_sync(host)
    assert_rows_kept(before, history(host))
    assert students(host) == data
    report = json.loads((tmp_path / "reports" / ("%s.json" % host["name"])).read_text())
    assert report["status"] == "recovered", report
    return report


class Watcher(threading.Thread):
    """Polls `probe` (bounded) and runs `act` once it is true; `fired` says whether it did."""

    def __init__(self, probe, act, timeout: float = 240, interval: float = 0.1):
        super().__init__(daemon=True)
        self.probe, self.act, self.timeout, self.interval = probe, act, timeout, interval
        self.fired = False
        self.stop_event = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not self.stop_event.is_set():
            if self.probe():
                self.act()
                self.fired = True
                return
            time.sleep(self.interval)

    def finish(self):
        self.stop_event.set()
        self.join(timeout=60)


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL stopped


def test_postgres_stopped_between_backup_and_resolve(hosts, tmp_path):
    host = hosts["lab-fault1"]
    reset(host["name"])
    before, data = history(host), students(host)
    # Inside the host (a detached watcher), so the stop lands between pg_backup's manifest and the resolve. It waits
    # for that event however long the run takes to get there (30 minutes: only a safety net), and is ended once the
    # run is over, so it can never stop PostgreSQL under a later test.
    proc = run(["docker", "exec", "-d", host["name"], "bash", "-c",
                "rm -f /opt/lab/pg-stopped; echo $$ > /opt/lab/pg-watcher.pid; exec timeout 1800 bash -c "
                "\"until compgen -G '%s/*.manifest.json' >/dev/null; do sleep 0.05; done; "
                "pg_ctlcluster 15 main stop -m fast; touch /opt/lab/pg-stopped\"" % BACKUPS], timeout=30)
    assert proc.returncode == 0, proc.stderr

    try:
        proc = playbook(host, tmp_path)
    finally:
        sh(host, "kill $(cat /opt/lab/pg-watcher.pid) 2>/dev/null; rm -f /opt/lab/pg-watcher.pid; true")

    assert proc.returncode != 0
    assert sh(host, "test -f /opt/lab/pg-stopped").returncode == 0, "the watcher never stopped PostgreSQL"
    assert "Resolve | Mark migrations rolled back" in failed_task(proc, host["name"]), failed_task(proc, host["name"])
    assert recap(proc, host["name"])["failed"] == 1
    pg_start(host)
    assert history(host) == before, "a write reached _prisma_migrations"
    assert students(host) == data
    assert len(dumps(host)) == 1

    report = next_run_recovers(host, tmp_path, before, data)
    assert len(dumps(host)) == 1, "the verified backup from the interrupted run is reused, not taken again"
    assert report["actions"][0] == {"action": "backup", "path": "%s/%s" % (BACKUPS, dumps(host)[0]), "reused": True}


def test_postgres_stopped_during_deploy(hosts, tmp_path):
    host = hosts["lab-fault2"]
    reset(host["name"])
    before, data = history(host), students(host)
    # An uncommitted "Grade" table of another session makes deploy's CREATE TABLE "Grade" wait: the deploy is then
    # running (Prisma's lock held, its new row inserted, the script started) when PostgreSQL stops.
    blocker = subprocess.Popen(["docker", "exec", "-i", host["name"], "runuser", "-u", "postgres", "--", "psql", "-X",
                                "-q", "-p", str(host["lab_db_port"]), "-d", "schooliat"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    blocker.stdin.write('BEGIN; CREATE TABLE public."Grade" (x int);\n')
    blocker.stdin.flush()

    def deploy_waits():
        rows = psql(host, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'schooliat' "
                          "AND wait_event_type = 'Lock'")
        return rows[0][0] != "0"

    watcher = Watcher(deploy_waits, lambda: pg_stop(host), interval=0.3)
    watcher.start()
    try:
        proc = playbook(host, tmp_path)
    finally:
        watcher.finish()
        blocker.kill()
        blocker.wait(timeout=30)

    assert watcher.fired, "the deploy never waited: " + proc.stdout[-3000:]
    assert proc.returncode != 0
    assert "Deploy | Run the project's deploy command" in failed_task(proc, host["name"])
    # The history cannot be read again after the failed attempt: no blind second attempt, the host stops at once.
    assert "deploy attempt 1 failed" in proc.stdout and "the history could not be read again" in proc.stdout
    assert "Deploy | Run the project's deploy command (attempt 2)" not in proc.stdout
    pg_start(host)
    after = history(host)
    assert_rows_kept(before, after)
    failed_before = [i for i, r in before.items() if r["name"] == GRADES]
    assert len(failed_before) == 1 and after[failed_before[0]]["rolled_back"] != "-", "resolved exactly once"
    new = {i: r for i, r in after.items() if i not in before}
    # The interrupted deploy left its own failed row (a new P3009) and nothing of its script.
    assert [(r["name"], r["finished"], r["rolled_back"]) for r in new.values()] == [(GRADES, "-", "-")], new
    assert psql(host, "SELECT to_regclass('public.\"Grade\"') IS NULL") == [["t"]]
    assert students(host) == data
    assert len(dumps(host)) == 1

    report = next_run_recovers(host, tmp_path, after, data)
    assert [a["action"] for a in report["actions"]] == ["backup", "resolve_rolled_back", "deploy"]
    # The first run's backup is older than its own resolve and the deploy's new row: never reused (issue 13).
    assert report["actions"][0]["reused"] is False and len(dumps(host)) == 2


# ---------------------------------------------------------------------------------------------------------------
# The SSH connection cut


def sshd_pids(host: dict) -> list:
    proc = sh(host, "ps -eo pid=,comm=")
    return [line.split()[0] for line in proc.stdout.splitlines() if line.split()[1:] == ["sshd"]]


def test_ssh_cut_mid_play(hosts, tmp_path):
    host = hosts["lab-fault3"]
    reset(host["name"])
    before, data = history(host), students(host)

    def cut():
        # Every sshd of the host by pid (the listener and the play's session), then a new listener 3 s later.
        pids = sshd_pids(host)
        sh(host, "kill -9 %s" % " ".join(pids))
        time.sleep(3)
        assert sh(host, "/usr/sbin/sshd -p %d -o ListenAddress=127.0.0.1" % host["ansible_port"]).returncode == 0

    watcher = Watcher(lambda: bool(dumps(host)), cut, interval=0.05)
    watcher.start()
    try:
        proc = playbook(host, tmp_path)
    finally:
        watcher.finish()
    assert watcher.fired
    assert proc.returncode != 0
    assert recap(proc, host["name"])["unreachable"] == 1, proc.stdout[-3000:]
    assert "UNREACHABLE!" in proc.stdout
    after = history(host)
    assert_rows_kept(before, after)
    assert len([r for r in after.values() if r["name"] == GRADES and r["finished"] != "-"
                and r["rolled_back"] == "-"]) <= 1
    assert students(host) == data
    assert len(dumps(host)) == 1
    assert not [e for e in backup_entries(host) if ".tmp-" in e], backup_entries(host)

    next_run_recovers(host, tmp_path, before, data)
    assert len(dumps(host)) == 1


# ---------------------------------------------------------------------------------------------------------------
# Two runs at once


def test_two_runs_at_once_one_acts(hosts, tmp_path):
    host = hosts["lab-fault4"]
    reset(host["name"])
    before, data = history(host), students(host)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    procs = []
    for index in (1, 2):
        argv = [str(PLAYBOOK_BIN), "-i", str(INVENTORY), "playbooks/recover.yml", "-l", host["name"],
                "-e", "recover_report_dir=%s" % (tmp_path / ("reports%d" % index))]
        procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = [p.communicate(timeout=420)[0] for p in procs]
    codes = [p.returncode for p in procs]
    for out in outputs:
        print(out)

    assert 0 in codes, outputs
    assert len(dumps(host)) == 1, ("a double dump", dumps(host))
    reports = [json.loads(p.read_text()) for p in tmp_path.glob("reports*/%s.json" % host["name"])]
    resolved = [a for r in reports for a in r["actions"] if a["action"].startswith("resolve") and a.get("changed")]
    assert len(resolved) == 1, ("a double resolve", reports)
    dumped = [a for r in reports for a in r["actions"] if a["action"] == "backup" and not a["reused"]]
    assert len(dumped) == 1, reports
    for code, out in zip(codes, outputs):
        if code != 0:  # the other run stopped cleanly, saying why, before any write
            assert "another recover run" in out or "Prisma's advisory lock is held" in out, out[-3000:]
    assert_in_sync(host)
    assert_rows_kept(before, history(host))
    assert students(host) == data
    # And the next run finds nothing to do (into an existing report directory: creating one counts as a change).
    (tmp_path / "reports").mkdir(mode=0o700)
    proc = playbook(host, tmp_path)
    assert proc.returncode == 0 and recap(proc, host["name"])["changed"] == 0, proc.stdout[-3000:]


# ---------------------------------------------------------------------------------------------------------------
# The backup disk full


def fill_backups(host: dict) -> None:
    # dd stops at ENOSPC (exit 1): the tmpfs is then full.
    sh(host, "dd if=/dev/zero of=%s/filler bs=64k status=none; sync" % BACKUPS, timeout=120)
    free = sh(host, "df -P -k %s | tail -n 1" % BACKUPS).stdout.split()[3]
    assert int(free) == 0, free


def test_backup_disk_full_stops_before_any_write(hosts, tmp_path):
    host = hosts["lab-fault5"]
    reset(host["name"])
    assert "tmpfs" in sh(host, "df -P %s" % BACKUPS).stdout
    before, data = history(host), students(host)
    fill_backups(host)

    # The preflight sees it: the database does not fit in what is free.
    proc = playbook(host, tmp_path)
    assert proc.returncode != 0
    assert "not enough free disk for the backup" in proc.stdout, proc.stdout[-3000:]
    assert "Nothing was changed" in proc.stdout
    assert history(host) == before and students(host) == data

    # Past the estimate (factor 0), pg_dump itself hits ENOSPC: the backup fails, its partial file is removed,
    # and nothing is resolved.
    proc = playbook(host, tmp_path, "-e", "recover_backup_space_factor=0")
    assert proc.returncode != 0
    assert "Backup | Take a verified backup" in failed_task(proc, host["name"]), proc.stdout[-3000:]
    assert re.search(r"No space left on device|ENOSPC|disk full", proc.stdout, re.I), proc.stdout[-3000:]
    assert history(host) == before and students(host) == data
    assert backup_entries(host) == ["filler"], backup_entries(host)

    sh(host, "rm -f %s/filler" % BACKUPS)
    next_run_recovers(host, tmp_path, before, data)
    assert len(dumps(host)) == 1


# ---------------------------------------------------------------------------------------------------------------
# One host of five with a wrong password


def test_wrong_password_on_one_host_of_five(hosts, tmp_path):
    names = ["lab-fault1", "lab-fault2", "lab-fault3", "lab-fault4", "lab-fault5"]
    reset(*names)
    bad = hosts["lab-fault3"]
    good = [hosts[n] for n in names if n != bad["name"]]
    before = {h["name"]: (history(h), students(h)) for h in good}
    bad_before = history(bad)
    real = env_password(bad)
    wrong = "Wr0ng-pass-%d" % os.getpid()
    sh(bad, "sed -i 's#^\\(DATABASE_URL=\"postgresql://schooliat:\\)[^@]*@#\\1%s@#' %s"
       % (wrong, bad["lab_env_file"]))
    assert env_password(bad) == wrong

    proc = playbook(bad, tmp_path, "-e", "recover_hosts=%s" % ":".join(names), limit=False)

    assert proc.returncode != 0
    assert recap(proc, bad["name"])["failed"] == 1
    lines = proc.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("fatal: [%s]" % bad["name"])]
    assert len(starts) == 1, starts
    # The failure and its indented result (the yaml callback folds it over lines): one message, what to do.
    block = [lines[starts[0]]]
    for line in lines[starts[0] + 1:]:
        if not line.startswith(" "):
            break
        block.append(line)
    message = " ".join(" ".join(block).split())
    assert "password authentication failed" in message, block
    assert wrong not in proc.stdout + proc.stderr
    summary = proc.stdout.split("PLAY [Fleet summary]")[1]
    assert re.search(r"%s: (NO RESULT|failed)" % bad["name"], summary), summary
    for host in good:
        assert recap(proc, host["name"])["failed"] == 0
        assert "%s: recovered" % host["name"] in summary, summary
        assert_in_sync(host)
        assert_rows_kept(before[host["name"]][0], history(host))
        assert students(host) == before[host["name"]][1]
    assert history(bad) == bad_before and dumps(bad) == []

    # The password fixed, the next normal run recovers that host too.
    assert sh(bad, "sed -i 's#%s@#%s@#' %s" % (wrong, real, bad["lab_env_file"])).returncode == 0
    next_run_recovers(bad, tmp_path, bad_before, students(bad))


# ---------------------------------------------------------------------------------------------------------------
# Hostile names and a hostile .env


# Prisma itself refuses (P3015) folder names with a double quote, '<', '>', '|' or glob characters (* ? {}), and
# (seen here with the real CLI 6.19.3) one holding "$(touch ...)": the rest of the shell's metacharacters are in this one.
WEIRD = "20240501000000_it's a weird name; & done"


def test_weird_migration_name_and_env_file_nothing_executed(hosts, tmp_path):
    host = hosts["lab-fault1"]
    reset(host["name"])
    before, data = history(host), students(host)
    url = env_url(host)
    migrations = host["lab_migrations_dir"]
    env_text = ("# a comment with $(touch /tmp/pwned-env-comment)\n"
                "export NODE_ENV = production\n"
                "SHELLISH='$(touch /tmp/pwned-env-value)'\n"
                "  export   DATABASE_URL =  \"%s\"   # trailing comment `touch /tmp/pwned-env-tick`\n"
                "OTHER = \"a b # not a comment\"\n" % url)
    folder = os.path.join(migrations, WEIRD)
    script = "import os, sys; os.makedirs(sys.argv[1]); open(os.path.join(sys.argv[1], 'migration.sql'), 'w')" \
             ".write('CREATE TABLE \"Weird\" (\"id\" INTEGER);\\n'); open(sys.argv[2], 'w').write(sys.argv[3])"
    proc = run(["docker", "exec", host["name"], "python3", "-c", script, folder, host["lab_env_file"], env_text])
    assert proc.returncode == 0, proc.stderr
    sh(host, "chown -R app:app %s %s && chmod 0600 %s" % (migrations, host["lab_env_file"], host["lab_env_file"]))

    proc = playbook(host, tmp_path)

    assert proc.returncode == 0, proc.stdout[-4000:]
    after = history(host)
    assert_rows_kept(before, after)
    weird_rows = [r for r in after.values() if r["name"] == WEIRD]
    assert len(weird_rows) == 1 and weird_rows[0]["finished"] != "-", after
    assert psql(host, "SELECT to_regclass('public.\"Weird\"') IS NOT NULL") == [["t"]]
    assert students(host) == data
    pwned = sh(host, "ls /tmp/pwned* 2>/dev/null; ls /tmp | grep -c pwned || true").stdout
    assert pwned.strip() == "0", pwned
    assert not list(Path("/tmp").glob("pwned*"))
    report = json.loads((tmp_path / "reports" / ("%s.json" % host["name"])).read_text())
    assert report["status"] == "recovered" and WEIRD in report["actions"][-1]["applied"], report


# ---------------------------------------------------------------------------------------------------------------
# Secrets at -vvv, and the restore on the containerised host


def scan(texts: dict, secrets: list) -> list:
    return [(where, secret[:6] + "...") for where, text in texts.items() for secret in secrets if secret in text]


@pytest.mark.parametrize("name", ["lab-fault2", "lab-faultdocker"])
def test_no_secret_anywhere_at_vvv_and_restore(hosts, tmp_path, name):
    host = hosts[name]
    reset(name)
    before, data = history(host), students(host)
    password, url = env_password(host), env_url(host)
    assert len(password) >= 16
    secrets = [password, url, url.split("?")[0]]
    log = tmp_path / "ansible.log"
    env = {"ANSIBLE_LOG_PATH": str(log)}
    outputs = {}
    extra = ["-e", "restore_db_container=%s" % host["lab_db_container"]] if "lab_db_container" in host else []

    recover = playbook(host, tmp_path, "-vvv", env=env)
    assert recover.returncode == 0, recover.stdout[-3000:]
    outputs["recover"] = recover.stdout + recover.stderr
    backup = json.loads((tmp_path / "reports" / ("%s.json" % name)).read_text())["backup_path"]
    assert backup and backup.endswith(".dump")
    drift = playbook(host, tmp_path, "-vvv", "-e", "drift_check_project_dir=%s" % host["lab_app_dir"],
                     "-e", "drift_check_migrations_dir=%s" % host["lab_migrations_dir"],
                     "-e", "drift_check_report_dir=%s" % (tmp_path / "drift"), book="drift_check.yml", env=env)
    outputs["drift_check"] = drift.stdout + drift.stderr
    assert "PLAY RECAP" in drift.stdout, drift.stdout[-3000:]
    # Back to the P3009 state the recovery's backup holds: custom format, through the database's container on
    # the containerised host (restore_db_container, restore_container_exec).
    restore = playbook(host, tmp_path, "-vvv", "-e", "restore_env_file=%s" % host["lab_env_file"],
                       "-e", "restore_backup_dir=%s" % BACKUPS, "-e", "restore_backup_path=%s" % backup,
                       "-e", "restore_confirm=schooliat", *extra, book="restore.yml", env=env)
    outputs["restore"] = restore.stdout + restore.stderr
    assert restore.returncode == 0, restore.stdout[-4000:]
    assert history(host) == before, "the restore brought back the P3009 history exactly"
    assert students(host) == data
    assert psql(host, "SELECT to_regclass('public.\"Grade\"') IS NULL AND to_regclass('public.\"Notice\"') IS NULL") \
        == [["t"]]
    if extra:
        assert "docker exec" in outputs["restore"] or "container" in outputs["restore"]

    texts = dict(outputs)
    texts["ansible.log"] = log.read_text()
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != log:
            texts[str(path)] = path.read_text(errors="replace")
    texts["manifests"] = sh(host, "cat %s/*.manifest.json" % BACKUPS).stdout
    assert '"sha256"' in texts["manifests"]
    texts["postgresql.log"] = sh(host, "cat /var/log/postgresql/*.log", container=db_container(host)).stdout
    assert scan(texts, secrets) == []

    next_run_recovers(host, tmp_path, before, data)
