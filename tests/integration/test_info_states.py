"""prisma_migration_info on real PostgreSQL, every state made by the real Prisma CLI where it can make it,
and the module's reading checked against what the CLI does next. Every test runs on both oracle CLIs
(6.19.3 and 7.10.1); where 7.x behaves differently the test says so per version."""

from __future__ import annotations

import pytest

from tests.harness.prisma import major

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma, pytest.mark.both_prisma_clis]

INIT = 'CREATE TABLE "User" ("id" SERIAL NOT NULL, "email" TEXT NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));\n'
POSTS = 'CREATE TABLE "Post" ("id" SERIAL NOT NULL, "title" TEXT NOT NULL, CONSTRAINT "Post_pkey" PRIMARY KEY ("id"));\n'
BROKEN = 'CREATE TABLE "Broken" ("id" INTEGER);\nSELECT 1/0;\n'
TAGS = 'CREATE TABLE "Tag" ("id" SERIAL PRIMARY KEY);\n'


def by_name(result: dict) -> dict:
    return {m["name"]: m for m in result["migrations"]}


def history_rows(db) -> list:
    return db.execute("SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL "
                      "FROM _prisma_migrations ORDER BY started_at, id")


def test_deployed_history_is_in_sync_and_deploy_agrees(project, info):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_posts", POSTS)
    assert project.deploy().returncode == 0

    result = info(migrations_dir=str(project.migrations_dir))

    assert result["_rc"] == 0, result
    assert result["changed"] is False
    assert result["in_sync"] is True and result["deploy_blocked"] is False
    assert [(m["name"], m["state"], m["checksum_ok"], m["attempts"]) for m in result["migrations"]] == [
        ("20250101000000_init", "applied", True, 1), ("20250102000000_posts", "applied", True, 1)]
    assert result["counts"]["applied"] == 2 and result["will_deploy"] == []
    assert result["lock"] is None
    redeploy = project.deploy()
    assert redeploy.returncode == 0 and "No pending migrations to apply" in redeploy.output


def test_pending_in_prisma_order_matches_what_deploy_applies(project, info, db):
    project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    # Names chosen so that byte order and Prisma's localeCompare order differ.
    project.add_migration("20250102000000_b", TAGS)
    project.add_migration("20250102000000_A", POSTS)
    project.add_migration("20250102000000-c", 'CREATE TABLE "C" ("id" INTEGER);\n')

    result = info(migrations_dir=str(project.migrations_dir))

    assert result["pending"] == ["20250102000000_A", "20250102000000_b", "20250102000000-c"]
    assert result["will_deploy"] == result["pending"]
    assert result["in_sync"] is False and result["deploy_blocked"] is False
    status = project.status()
    assert status.returncode == 1
    for name in result["pending"]:
        assert name in status.stdout
    assert project.deploy().returncode == 0
    applied = [row[0] for row in history_rows(db)][1:]
    assert applied == result["will_deploy"]


def test_failed_migration_blocks_deploy_exactly_when_cli_says_p3009(project, info):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_broken", BROKEN)
    project.add_migration("20250103000000_tags", TAGS)
    first = project.deploy()
    assert first.returncode == 1

    result = info(migrations_dir=str(project.migrations_dir))

    assert result["deploy_blocked"] is True
    assert result["failed_migrations"] == ["20250102000000_broken"]
    broken = by_name(result)["20250102000000_broken"]
    assert broken["state"] == "failed" and broken["will_deploy"] is False
    assert broken["finished_at"] is None and broken["rolled_back_at"] is None
    assert broken["error"]["message"] == "division by zero"
    assert "division by zero" in broken["logs"]
    assert result["will_deploy"] == ["20250103000000_tags"]
    assert "20250102000000_broken" in result["summary"] and "P3009" in result["summary"]
    assert project.deploy().error_code == "P3009"


def test_rolled_back_is_reported_as_rerun_where_status_hides_it(project, info, db):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_broken", BROKEN)
    assert project.deploy().returncode == 1
    assert project.resolve("20250102000000_broken", "rolled_back").returncode == 0

    result = info(migrations_dir=str(project.migrations_dir))

    broken = by_name(result)["20250102000000_broken"]
    assert broken["state"] == "rolled_back" and broken["will_deploy"] is True
    assert result["rolled_back"] == ["20250102000000_broken"]
    assert result["will_deploy"] == ["20250102000000_broken"]
    assert result["deploy_blocked"] is False and result["in_sync"] is False
    status = project.status()
    if major(project.version) >= 7:
        # 7.9.0 and later list it as not yet applied and exit 1 (prisma-engines PR #5817) ...
        assert status.returncode == 1 and "Following migration have not yet been applied" in status.stdout
        assert "20250102000000_broken" in status.stdout
    else:
        # ... 6.x calls this "up to date" ...
        assert status.returncode == 0 and "Database schema is up to date" in status.stdout
    # ... and deploy runs it again (and here fails again: the JS engine left "Broken" behind).
    again = project.deploy()
    assert again.returncode == 1
    assert [row[0] for row in history_rows(db)].count("20250102000000_broken") == 2


def test_resolved_applied_is_applied_with_two_attempts(project, info):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_broken", BROKEN)
    assert project.deploy().returncode == 1
    assert project.resolve("20250102000000_broken", "applied").returncode == 0

    result = info(migrations_dir=str(project.migrations_dir))

    broken = by_name(result)["20250102000000_broken"]
    assert broken["state"] == "applied" and broken["attempts"] == 2 and broken["checksum_ok"] is True
    assert broken["applied_steps_count"] == 0 and broken["started_at"] == broken["finished_at"]
    assert result["in_sync"] is True and result["deploy_blocked"] is False
    assert "No pending migrations to apply" in project.deploy().output


def test_edited_after_apply_is_modified_where_status_says_up_to_date(project, info):
    path = project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    path.write_text(INIT + "-- edited after deploy\n")

    result = info(migrations_dir=str(project.migrations_dir))

    init = by_name(result)["20250101000000_init"]
    assert init["state"] == "modified" and init["checksum_ok"] is False
    assert init["checksum_local"] != init["checksum_database"]
    assert result["modified"] == ["20250101000000_init"] and result["in_sync"] is False
    status = project.status()
    assert status.returncode == 0 and "Database schema is up to date" in status.stdout


@pytest.mark.parametrize("rewrite, modified", [
    (lambda text: text.replace("\n", "\r\n").encode(), False),   # CRLF checkout of an LF file: same migration
    (lambda text: b"\xef\xbb\xbf" + text.encode(), True),        # a BOM is an edit for Prisma
])
def test_line_endings_and_bom_follow_prisma_checksum_rules(project, info, rewrite, modified):
    path = project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    path.write_bytes(rewrite(INIT))

    result = info(migrations_dir=str(project.migrations_dir))

    assert (result["modified"] == ["20250101000000_init"]) is modified
    assert by_name(result)["20250101000000_init"]["checksum_ok"] is (not modified)


def test_migration_missing_on_disk_is_reported_where_status_says_up_to_date(project, info):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_posts", POSTS)
    assert project.deploy().returncode == 0
    project.remove_migration("20250102000000_posts")

    result = info(migrations_dir=str(project.migrations_dir))

    posts = by_name(result)["20250102000000_posts"]
    assert posts["state"] == "missing_locally" and posts["local"] is False
    assert result["missing_locally"] == ["20250102000000_posts"] and result["in_sync"] is False
    status = project.status()
    assert status.returncode == 0 and "Database schema is up to date" in status.stdout


def test_empty_database_without_history_table_is_a_state_not_an_error(project, info):
    project.add_migration("20250101000000_init", INIT)

    result = info(migrations_dir=str(project.migrations_dir))

    assert result["_rc"] == 0
    assert result["table_exists"] is False and result["baseline_needed"] is False
    assert result["pending"] == ["20250101000000_init"] and result["in_sync"] is False
    assert project.deploy().returncode == 0


def test_non_empty_database_without_history_needs_baseline_exactly_when_cli_says_p3005(project, info, db):
    project.add_migration("20250101000000_init", INIT)
    db.execute('CREATE TABLE "Legacy" ("id" INTEGER)')

    result = info(migrations_dir=str(project.migrations_dir))

    assert result["table_exists"] is False and result["baseline_needed"] is True
    assert "P3005" in result["summary"]
    assert project.deploy().error_code == "P3005"


def test_folder_without_migration_sql_is_flagged_as_deploy_would_fail_p3015(project, info):
    project.add_migration("20250101000000_init", INIT)
    assert project.deploy().returncode == 0
    (project.migrations_dir / "20250102000000_empty").mkdir()

    result = info(migrations_dir=str(project.migrations_dir))

    empty = by_name(result)["20250102000000_empty"]
    assert empty["state"] == "pending" and empty["script_present"] is False
    assert result["missing_scripts"] == ["20250102000000_empty"]
    assert project.deploy().error_code == "P3015"


def test_history_in_a_non_default_schema_from_the_url(pg_cluster, tmp_path, prisma_version):
    from tests.harness.prisma import PrismaProject
    from tests.harness.modules import run_module
    database = pg_cluster.create_database()
    database.execute("CREATE SCHEMA tenant AUTHORIZATION CURRENT_USER")
    url = database.url(schema="tenant")
    app = PrismaProject.create(tmp_path / "app", url, version=prisma_version)
    app.add_migration("20250101000000_init", INIT)
    assert app.deploy().returncode == 0

    in_tenant = run_module("prisma_migration_info", {"database_url": url, "migrations_dir": str(app.migrations_dir)})
    in_public = run_module("prisma_migration_info",
                           {"database_url": url, "schema": "public", "migrations_dir": str(app.migrations_dir)})

    assert in_tenant["in_sync"] is True and in_tenant["connection"]["schema"] == "tenant"
    assert in_public["table_exists"] is False and in_public["pending"] == ["20250101000000_init"]
    pg_cluster.drop_database(database.name)


def test_database_side_only_without_migrations_dir(project, info):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_broken", BROKEN)
    assert project.deploy().returncode == 1

    result = info()

    assert result["deploy_blocked"] is True and result["failed_migrations"] == ["20250102000000_broken"]
    assert all(m["local"] is None for m in result["migrations"])
    assert result["pending"] == [] and result["missing_locally"] == []


def test_check_mode_reads_the_same_and_writes_nothing(project, info, db):
    project.add_migration("20250101000000_init", INIT)
    project.add_migration("20250102000000_broken", BROKEN)
    assert project.deploy().returncode == 1
    before = db.execute("SELECT * FROM _prisma_migrations ORDER BY id")

    normal = info(migrations_dir=str(project.migrations_dir))
    checked = info(check_mode=True, migrations_dir=str(project.migrations_dir))

    assert checked["_rc"] == 0 and checked["changed"] is False
    strip = ("_stdout", "_stderr", "_rc", "invocation", "server", "lock")
    assert {k: v for k, v in checked.items() if k not in strip} == {k: v for k, v in normal.items() if k not in strip}
    assert db.execute("SELECT * FROM _prisma_migrations ORDER BY id") == before
