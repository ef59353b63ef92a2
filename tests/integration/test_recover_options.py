"""The recover role's opt-in strategy for `partial` and its preflight and verify extras, end to end on one local host.

Real PostgreSQL, the real Prisma CLI for every failure, playbooks/recover.yml as an operator runs it; what the
database holds afterwards is read with psycopg2. The health URL is a python http.server on 127.0.0.1 that the
test starts and stops; the small disk is a 1 MiB tmpfs the test mounts and unmounts.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.harness.prisma import major
from tests.harness.scenario import GUARDIANS, INIT, local_inventory, make_p3009, write_env_file
from tests.integration.test_complete import fail_then_shape
from tests.integration.test_recover_local import HOST, files, in_sync, playbook, recap, rows

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma, pytest.mark.slow]


@pytest.fixture
def host(project, db, tmp_path):
    write_env_file(project)

    def _inventory(**overrides) -> Path:
        return local_inventory(tmp_path, project, db.name, sys.executable, host=HOST, **overrides)
    return _inventory


def report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "reports" / ("%s.json" % HOST)).read_text())


def dumps(tmp_path: Path) -> list:
    return [n for n in files(tmp_path / "backups") if n.endswith(".dump")]


def output(proc) -> str:
    # Folded YAML messages wrap at the terminal width; compare on single spaces.
    return " ".join((proc.stdout + proc.stderr).split())


@contextlib.contextmanager
def http_server(root: Path):
    """A static HTTP server on 127.0.0.1 and a free port, for the duration of the block."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def git(project_dir: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(project_dir), "-c", "user.name=test", "-c", "user.email=test@example.invalid",
                           *args], capture_output=True, text=True, check=True, timeout=30)
    return proc.stdout.strip()


# ---------------------------------------------------------------- partial: opt-in completion


def test_partial_strategy_complete_runs_the_missing_statements_after_a_backup(project, db, host, tmp_path):
    make_p3009(project, db, "partial")
    inventory = host(recover_partial_strategy="complete")
    before = rows(db)

    checked = playbook(inventory, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "%s: run 2 missing statements (4, 5), then resolve --applied, committed only if identical to a clean apply " \
           "[evidence; verdict partial" % GUARDIANS in output(checked)
    assert rows(db) == before and dumps(tmp_path) == []
    assert db.execute("SELECT to_regclass('public.\"Student_guardianId_idx\"')") == [(None,)]

    first = playbook(inventory)
    assert first.returncode == 0, first.stdout + first.stderr
    assert in_sync(db, [INIT, GUARDIANS])
    assert db.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'Student_guardianId_fkey'") == [(1,)]
    assert db.execute("SELECT to_regclass('public.\"Student_guardianId_idx\"') IS NOT NULL") == [(True,)]
    result = report(tmp_path)
    assert result["status"] == "recovered"
    assert result["plan"][0]["action"] == "complete" and result["plan"][0]["statements"] == [4, 5]
    assert [a["action"] for a in result["actions"]][:2] == ["backup", "complete"]  # the backup comes first
    assert result["actions"][1] == {"action": "complete", "names": [GUARDIANS], "ran": [4, 5], "changed": True}
    assert len(dumps(tmp_path)) == 1
    assert project.deploy().returncode == 0 and project.status().returncode == 0

    after = rows(db)
    second = playbook(inventory)
    assert second.returncode == 0 and recap(second)["changed"] == 0, second.stdout
    assert rows(db) == after and len(dumps(tmp_path)) == 1


def test_a_completion_the_module_refuses_stops_at_plan_time_before_the_backup(project, db, host, tmp_path):
    name = "20240201000000_tags"
    fail_then_shape(project, db, name, 'CREATE TABLE "Tag" ("id" INTEGER NOT NULL);\n'
                                       'INSERT INTO "Tag" ("id") VALUES (1);\n'
                                       'CREATE TABLE "Label" ("id" INTEGER NOT NULL);\n', upto=1)
    before = rows(db)

    proc = playbook(host(recover_overrides={name: "complete"}))

    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    text = output(proc)
    assert "stopped before any change: %s" % name in text
    assert "completion refused: statement 2 (insert Tag: INSERT INTO" in text and "cannot be checked" in text
    assert rows(db) == before and dumps(tmp_path) == []
    assert report(tmp_path)["plan"][0]["source"] == "override"


def test_bad_override_and_strategy_values_are_refused_before_any_change(project, db, host, tmp_path):
    make_p3009(project, db, "partial")
    before = rows(db)
    bad_override = playbook(host(recover_overrides={GUARDIANS: "finish"}))
    assert bad_override.returncode != 0
    assert "recover_overrides values must be applied, rolled_back or complete" in output(bad_override)
    bad_strategy = playbook(host(recover_partial_strategy="yolo"))
    assert bad_strategy.returncode != 0 and "recover_partial_strategy" in output(bad_strategy)
    assert "proven, complete" in output(bad_strategy) and "yolo" in output(bad_strategy)  # the spec or the assert
    assert rows(db) == before and dumps(tmp_path) == []


# ---------------------------------------------------------------- preflight extras


def test_expected_git_ref_must_be_the_checkout_commit(project, db, host, tmp_path):
    make_p3009(project, db, "not_applied")
    (project.root / ".gitignore").write_text("node_modules\n.env\n")
    git(project.root, "init", "-q")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "release 1")
    git(project.root, "tag", "v1")
    old = git(project.root, "rev-parse", "HEAD")
    (project.root / "README").write_text("release 2\n")
    git(project.root, "add", "README")
    git(project.root, "commit", "-q", "-m", "release 2")
    head = git(project.root, "rev-parse", "HEAD")
    before = rows(db)

    wrong = playbook(host(recover_expected_git_ref="v1"))
    assert wrong.returncode != 0 and recap(wrong)["failed"] == 1
    text = output(wrong)
    assert "the checkout %s is at %s, but recover_expected_git_ref v1 is %s" % (project.root, head, old) in text
    assert "Nothing was changed" in text

    unknown = playbook(host(recover_expected_git_ref="no-such-tag"))
    assert unknown.returncode != 0 and "cannot compare the checkout" in output(unknown)

    right = playbook(host(recover_expected_git_ref=head), "--check")
    assert right.returncode == 0, right.stdout + right.stderr
    assert "resolve --rolled-back" in right.stdout
    assert rows(db) == before and dumps(tmp_path) == []


def test_deploy_lock_file_stops_or_is_waited_for(project, db, host, tmp_path):
    make_p3009(project, db, "not_applied")
    lock_file = tmp_path / "deploy.lock"
    lock_file.write_text("deploying\n")
    before = rows(db)

    stopped = playbook(host(recover_deploy_lock_file=str(lock_file)))
    assert stopped.returncode != 0 and recap(stopped)["failed"] == 1
    assert "the deploy lock file %s exists: a deploy may be running. Nothing was changed" % lock_file in output(stopped)

    started = time.monotonic()
    timed_out = playbook(host(recover_deploy_lock_file=str(lock_file), recover_wait_for_lock=True,
                              recover_lock_wait_timeout=2))
    assert timed_out.returncode != 0
    assert "was still there after 2 s (recover_lock_wait_timeout)" in output(timed_out)
    assert time.monotonic() - started < 120
    assert rows(db) == before and dumps(tmp_path) == []

    remover = threading.Timer(8.0, lock_file.unlink)  # the "deploy" ends while the role waits
    remover.start()
    try:
        waited = playbook(host(recover_deploy_lock_file=str(lock_file), recover_wait_for_lock=True,
                               recover_lock_wait_timeout=90))
    finally:
        remover.cancel()
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert not lock_file.exists() and in_sync(db, [INIT, GUARDIANS])


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only); unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True,
                          text=True, check=False)
    yield mount_point if proc.returncode == 0 else None
    if proc.returncode == 0:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_too_little_disk_for_the_backup_stops_before_any_write(project, db, host, tmp_path, small_disk):
    make_p3009(project, db, "not_applied")
    before = rows(db)
    size = db.execute("SELECT pg_database_size(current_database())")[0][0]
    if small_disk is not None:
        backup_dir = small_disk / "backups" / "app"        # does not exist yet: the nearest parent is the tmpfs
        extra = {"recover_backup_dir": str(backup_dir)}
        where = str(small_disk)
    else:  # not root: a factor no disk can satisfy (documented in the role README)
        backup_dir = tmp_path / "backups"
        extra = {"recover_backup_space_factor": 1.0e9}
        where = None
    assert size > 1024 * 1024  # an empty PostgreSQL 15 database is several MiB: it cannot fit in 1 MiB

    proc = playbook(host(**extra))

    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    text = output(proc)
    assert "not enough free disk for the backup: need" in text and "have" in text
    assert "Nothing was changed" in text
    if where:
        assert "in %s." % where in text and "have 1.0 MiB" in text
    assert rows(db) == before
    assert not backup_dir.exists() or files(backup_dir) == []


@pytest.mark.both_prisma_clis
def test_a_deploy_that_cannot_load_its_schema_stops_before_the_backup(project, db, host, tmp_path):
    """The deploy command names a schema path that is not there (as a Prisma 7 project with its schema under db/
    does with the role's default command): the CLI check in preflight stops the host with the CLI's own message,
    before the backup and before any write to _prisma_migrations."""
    make_p3009(project, db, "not_applied")
    before = rows(db)
    command = [str(project.root / "node_modules" / ".bin" / "prisma"), "migrate", "deploy", "--schema",
               "db/schema.prisma"]

    proc = playbook(host(recover_deploy_command=command))

    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    text = output(proc)
    assert "Preflight | The project's Prisma CLI loads and targets this database" in text
    assert "cannot load its config or schema here" in text and "Could not load `--schema` from provided path " \
           "`db/schema.prisma`" in text, text[-3000:]
    assert "Nothing was changed" in text or "nothing was changed" in text
    assert rows(db) == before and dumps(tmp_path) == []


@pytest.mark.both_prisma_clis
def test_a_cli_that_targets_another_database_stops_before_the_backup(project, db, host, tmp_path, pg_cluster):
    """The project's Prisma configuration reads its URL from another variable than the modules' .env (OTHER_URL, set
    in the deploy's environment): the CLI would deploy to another database. Stop, nothing written on either."""
    make_p3009(project, db, "not_applied")
    other = pg_cluster.create_database()
    try:
        before, others = rows(db), other.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        config = project.root / project.config_name
        if major(project.version) >= 7:
            # 7.x: the URL is the config's datasource.url, the schema has none.
            config.write_text(config.read_text().replace("env('DATABASE_URL')", "env('OTHER_URL')"))
        else:
            # 6.x: the schema's url (checked at start-up) and the adapter's connection string in the config.
            project.schema_file.write_text(project.schema_file.read_text().replace('env("DATABASE_URL")',
                                                                                   'env("OTHER_URL")'))
            config.write_text(config.read_text().replace("process.env.DATABASE_URL", "process.env.OTHER_URL"))
        assert "OTHER_URL" in config.read_text()
        from tests.harness.scenario import deploy_environment
        environment = dict(deploy_environment(project), OTHER_URL=other.url())

        proc = playbook(host(recover_deploy_environment=environment))

        assert proc.returncode != 0 and recap(proc)["failed"] == 1
        text = output(proc)
        assert "would touch another database than the modules: database %r for the CLI, %r for the modules" % (
            other.name, db.name) in text, text[-3000:]
        assert rows(db) == before and dumps(tmp_path) == []
        assert other.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == others
        assert other.url() not in proc.stdout and other.owner.password not in proc.stdout
    finally:
        pg_cluster.drop_database(other.name)


# ---------------------------------------------------------------- verify extras


def test_restart_and_health_only_after_a_change(project, db, host, tmp_path):
    make_p3009(project, db, "not_applied")
    marker = tmp_path / "restarted"
    site = tmp_path / "site"
    site.mkdir()
    (site / "health").write_text("ok\n")
    restart = [sys.executable, "-c", "open(%r, 'a').write('restarted\\n')" % str(marker)]
    with http_server(site) as base:
        inventory = host(recover_restart_command=restart, recover_health_url=base + "/health",
                         recover_health_retries=3, recover_health_delay=1)
        checked = playbook(inventory, "--check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert not marker.exists()                                    # check mode restarts nothing

        first = playbook(inventory)
        assert first.returncode == 0, first.stdout + first.stderr
        assert marker.read_text() == "restarted\n"
        actions = report(tmp_path)["actions"]
        assert [a["action"] for a in actions][-2:] == ["restart", "health"]
        assert actions[-1]["status"] == 200 and actions[-1]["url"] == base + "/health"

        second = playbook(inventory)                                  # in sync: a healthy host is not restarted
        assert second.returncode == 0 and recap(second)["changed"] == 0, second.stdout
        assert marker.read_text() == "restarted\n"


def test_a_failing_health_url_stops_with_what_to_do(project, db, host, tmp_path):
    make_p3009(project, db, "not_applied")
    site = tmp_path / "site"
    site.mkdir()
    with http_server(site) as base:
        started = time.monotonic()
        proc = playbook(host(recover_health_url=base + "/health", recover_health_retries=2, recover_health_delay=1))
        elapsed = time.monotonic() - started
    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    text = output(proc)
    assert "the migrations are recovered and in sync, but the health URL %s/health did not answer 200 after 2 " \
        "attempt(s) 1 s apart (last: 404" % base in text
    assert "Do not re-run the recovery for this" in text
    assert in_sync(db, [INIT, GUARDIANS])
    result = report(tmp_path)
    assert result["status"] == "stopped" and result["actions"][-1]["status"] == 404
    assert result["actions"][-1]["attempts"] == 2
    assert elapsed < 120
