"""playbooks/recover.yml end to end on one local host (ansible_connection=local), real PostgreSQL, real Prisma CLI.

Each test makes a real P3009 with the real CLI (tests/harness/scenario.py), then runs the playbook as an
operator would. What the database holds afterwards is read with psycopg2, never with our own module.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.scenario import GUARDIANS, INIT, add, local_inventory, make_p3009, write_env_file

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HOST = "local-host"


def rows(db) -> list:
    return db.execute("SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at, logs, "
                      "applied_steps_count FROM _prisma_migrations ORDER BY started_at, id")


def in_sync(db, names) -> bool:
    """Every local migration has a finished, not rolled-back row, and no row is failed."""
    failed = db.execute("SELECT 1 FROM _prisma_migrations WHERE finished_at IS NULL AND rolled_back_at IS NULL")
    applied = {r[0] for r in db.execute("SELECT migration_name FROM _prisma_migrations "
                                        "WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL")}
    return not failed and set(names) <= applied


def playbook(inventory: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), "playbooks/recover.yml", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          env={**__import__("os").environ, "ANSIBLE_NOCOLOR": "1"})


def recap(proc) -> dict:
    match = re.search(r"^%s\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(HOST),
                      proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def files(path: Path) -> list:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


@pytest.fixture
def host(project, db, tmp_path):
    write_env_file(project)

    def _inventory(**overrides) -> Path:
        return local_inventory(tmp_path, project, db.name, sys.executable, host=HOST, **overrides)
    return _inventory


def test_check_mode_then_recovery_then_a_second_run_changes_nothing(project, db, host, tmp_path):
    make_p3009(project, db, "not_applied")
    inventory = host()
    before = rows(db)

    checked = playbook(inventory, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert rows(db) == before
    assert "PLAN for %s" % HOST in checked.stdout
    assert "%s: resolve --rolled-back, then deploy re-runs it" % GUARDIANS in checked.stdout
    assert files(tmp_path / "backups") == []
    assert db.execute("SELECT to_regclass('public.\"Guardian\"')") == [(None,)]

    first = playbook(inventory)
    assert first.returncode == 0, first.stdout + first.stderr
    assert in_sync(db, [INIT, GUARDIANS])
    backups = [n for n in files(tmp_path / "backups") if n.endswith(".dump")]
    assert len(backups) == 1
    report_path = tmp_path / "reports" / ("%s.json" % HOST)
    assert stat.S_IMODE(report_path.stat().st_mode) == 0o600
    report = json.loads(report_path.read_text())
    assert report["status"] == "recovered"
    assert report["versions"]["prisma"] == "6.19.3" and report["versions"]["node"].startswith("v"), report["versions"]
    assert report["plan"] == [{"name": GUARDIANS, "verdict": "not_applied", "action": "rolled_back", "source": "evidence",
                               "reason": report["plan"][0]["reason"], "proof": "required"}]
    assert [a["action"] for a in report["actions"]] == ["backup", "resolve_rolled_back", "deploy"]
    assert report["actions"][2]["applied"] == [GUARDIANS]
    assert report["backup_path"].endswith(backups[0])
    assert report["before"]["deploy_blocked"] is True and report["after"]["in_sync"] is True
    assert db.url() not in first.stdout + report_path.read_text()
    assert db.owner.password not in first.stdout + first.stderr + report_path.read_text()
    assert "recovered" in first.stdout.split("PLAY [Fleet summary]")[1]

    after_first = rows(db)
    second = playbook(inventory)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second)["changed"] == 0
    assert rows(db) == after_first
    assert [n for n in files(tmp_path / "backups") if n.endswith(".dump")] == backups
    assert json.loads(report_path.read_text())["status"] == "in_sync_already"


def test_partial_is_completed_by_default_with_the_proof_and_equals_a_clean_apply(project, db, host, tmp_path, pg_cluster):
    """The default strategy (proven): the app role has no CREATEDB and no shadow_url is set, so the replay runs on the
    controller; the completion commits only because the schema it made is the one a clean apply leaves."""
    from tests.integration.test_complete import schema_dump
    make_p3009(project, db, "partial")

    proc = playbook(host())

    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())
    assert "%s: run 2 missing statements (4, 5), then resolve --applied, committed only if identical to a clean " \
           "apply" % GUARDIANS in text
    assert in_sync(db, [INIT, GUARDIANS])
    report = json.loads((tmp_path / "reports" / ("%s.json" % HOST)).read_text())
    assert report["status"] == "recovered"
    assert report["plan"][0]["action"] == "complete" and report["plan"][0]["proof"] == "required"
    assert report["plan"][0]["proven"] is True
    assert [a["action"] for a in report["actions"]][:2] == ["backup", "complete"]
    # The recovered schema is the one a clean deploy of the same folder leaves.
    clean = pg_cluster.create_database()
    try:
        from tests.harness.prisma import PrismaProject
        twin = PrismaProject.create(tmp_path / "twin", clean.url())
        for folder in sorted(project.migrations_dir.iterdir()):
            if folder.is_dir():
                twin.add_migration(folder.name, (folder / "migration.sql").read_text())
        assert twin.deploy().returncode == 0
        assert schema_dump(db) == schema_dump(clean)
    finally:
        pg_cluster.drop_database(clean.name)


def test_partial_stops_before_any_change_with_strategy_stop_or_without_a_proof(project, db, host, tmp_path):
    make_p3009(project, db, "partial")
    before = rows(db)

    for overrides, why in (({"recover_partial_strategy": "stop"}, "cannot be decided from the evidence (partial"),
                           ({"recover_controller_replay": False}, "completion refused: ")):
        proc = playbook(host(**overrides))

        assert proc.returncode != 0 and recap(proc)["failed"] == 1, proc.stdout
        text = " ".join(proc.stdout.split())
        assert "stopped before any change: %s" % GUARDIANS in text and why in text, text
        assert "recover_overrides" in text
        assert rows(db) == before
        assert files(tmp_path / "backups") == []
        report = json.loads((tmp_path / "reports" / ("%s.json" % HOST)).read_text())
        assert report["status"] == "stopped" and report["actions"] == []


def test_a_failing_deploy_is_tried_at_most_max_attempts_then_stops_with_the_next_step(project, db, host, tmp_path):
    make_p3009(project, db, "not_applied")
    # A deploy command that always fails: the resolve happens, then deploy fails every time.
    proc = playbook(host(recover_deploy_command=["/bin/false"], recover_max_attempts=3, recover_deploy_retry_delay=0))

    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    assert "deploy failed 3 time(s) (recover_max_attempts=3)" in proc.stdout
    assert "Next step:" in proc.stdout
    report = json.loads((tmp_path / "reports" / ("%s.json" % HOST)).read_text())
    assert report["status"] == "stopped"
    deploy = [a for a in report["actions"] if a["action"] == "deploy"]
    error = {"code": None, "message": "/bin/false failed (exit 1): no output", "migration": None, "sqlstate": None,
             "database_message": None}
    assert deploy == [{"action": "deploy", "applied": [], "failed": True, "rc": 1, "attempts": 3, "code": None,
                       "errors": [dict(error, attempt=n) for n in (1, 2, 3)]}]
    # Each retry was decided from the history read again (no failed row: nothing a second attempt would meet).
    assert proc.stdout.count("Deploy | Decide from the new evidence whether another attempt follows") == 3
    assert len([n for n in files(tmp_path / "backups") if n.endswith(".dump")]) == 1  # backed up before resolving


def test_a_deploy_that_fails_on_a_real_sql_error_stops_naming_that_error_not_p3009(project, db, host, tmp_path):
    """A pending migration fails on a real SQL error: the deploy writes a failed row. The history read again shows
    it, the error is not one of the moment, so no second attempt meets P3009: the host stops, and the console and
    the report name the database's own error and the migration."""
    add(project, INIT)
    assert project.deploy().returncode == 0
    broken = "20250301000000_backfill"
    project.add_migration(broken, 'ALTER TABLE "Nope" ADD COLUMN "x" INTEGER;\n')

    proc = playbook(host(recover_max_attempts=3, recover_deploy_retry_delay=0))

    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    text = " ".join(proc.stdout.split())
    # The JS engine through the driver adapter prints no P-code (native engines print P3018): none is invented.
    assert "deploy attempt 1 failed" in text and "failed (exit 1): external connector error: No such table" in text
    assert "migration %s failed with No such table: Nope" % broken in text, text
    assert "Another attempt follows" not in text and "deploy attempt 2" not in text.lower()
    assert "another attempt would fail the same way and meet P3009" in text
    report = json.loads((tmp_path / "reports" / ("%s.json" % HOST)).read_text())
    deploy = [a for a in report["actions"] if a["action"] == "deploy"]
    assert len(deploy) == 1 and deploy[0]["attempts"] == 1 and deploy[0]["code"] is None, deploy
    assert [(e["attempt"], e["code"], e["migration"], e["database_message"]) for e in deploy[0]["errors"]] == [
        (1, None, broken, "No such table: Nope")]
    assert report["status"] == "stopped" and "No such table: Nope" in report["message"]
    # One failed row, the one the real error left: no second attempt wrote anything.
    assert [(r[1], r[4] is None, r[5] is None) for r in rows(db)] == [(INIT, False, True), (broken, True, True)]


def test_expected_database_guard_stops_a_wrong_target(project, db, host, tmp_path):
    make_p3009(project, db, "not_applied")
    before = rows(db)

    proc = playbook(host(recover_expected_database="production"))

    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    assert "points at database %s" % db.name in proc.stdout and "not at production" in proc.stdout
    assert rows(db) == before
    assert files(tmp_path / "backups") == []
