"""Evidence on real PostgreSQL, for each failure shape of issue 5, through the real module.

The history rows come from the real Prisma CLI (6.19.3): `migrate deploy` of the init, then a
deploy of the migration under test that fails on its very first statement, so the CLI writes a
genuine failed row (P3009) and nothing else. The precise state the failure left behind is then
built deliberately with psycopg2, as each engine would have left it (see
../shared/notes/offline-prisma.md): the CLI's own JS engine splits scripts on ';' and cannot
reproduce the native engine's one implicit transaction.
"""

from __future__ import annotations


import psycopg2
import pytest

from tests.harness.scenario import BLOCKER, CORPUS, GUARDIANS, INIT, UNBLOCK, add

EXPLICIT_COMMIT = "20240415000000_explicit_commit"
DATA_ONLY = "20240501000000_data_only"


def script(name: str) -> str:
    return (CORPUS / name / "migration.sql").read_text()


def grant_createdb(db, allowed: bool = True) -> None:
    db.execute('ALTER ROLE "%s" %s' % (db.owner.name, "CREATEDB" if allowed else "NOCREATEDB"), superuser=True)


def deploy_init(project) -> None:
    add(project, INIT)
    result = project.deploy()
    assert result.returncode == 0, result.output


def failed_deploy(project, db, name: str, block: bool = True) -> str:
    """Deploy `name` so that it fails before changing anything; returns the CLI's output."""
    add(project, name)
    if block:
        db.execute(BLOCKER, superuser=True)
    try:
        result = project.deploy()
    finally:
        if block:
            db.execute(UNBLOCK, superuser=True)
    assert result.returncode == 1, result.output
    status = db.execute("SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NULL AND rolled_back_at IS NULL")
    assert status == [(name,)]
    return result.output


def run_statements(db, text: str, upto: int) -> None:
    """A statement-at-a-time engine (Prisma >= 7.4): statements 1..upto commit one by one, then it fails."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            for statement in parse_script(text).statements[:upto]:
                cur.execute(statement.sql)
    finally:
        conn.close()


def evidence_of(info, project, name: str, **args) -> dict:
    result = info(migrations_dir=str(project.migrations_dir), evidence=True, **args)
    assert result["_rc"] == 0, result
    assert result["failed_migrations"] == [name]
    assert "failed" not in result
    return result["evidence"][name]


def presence(entry: dict) -> list:
    return [s["present"] for s in entry["statements"]]


def shadow_databases(db) -> list:
    return db.execute("SELECT datname FROM pg_database WHERE datname LIKE 'prisma\\_ops\\_shadow\\_%'", superuser=True)


def test_applied_but_stuck_seed_incident_21_tables(project, db, info):
    # The script committed (native engine: one implicit transaction that succeeded), the row never finished.
    failed_deploy(project, db, INIT)
    db.execute(script(INIT))
    assert len(db.execute("SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'")) == 21
    grant_createdb(db)

    entry = evidence_of(info, project, INIT)

    assert entry["verdict"] == "applied" and entry["recommended_action"] == "resolve_applied"
    assert presence(entry) == [True] * 56
    assert entry["probe_verdict"] == "applied" and entry["shadow"]["status"] == "matches_after"
    assert entry["shadow"]["database"] == "temporary" and shadow_databases(db) == []


def test_not_applied_native_engine_rolled_back_its_one_transaction(project, db, info):
    deploy_init(project)
    failed_deploy(project, db, GUARDIANS)
    # What the native engine does: the whole file in one simple query; a failure rolls all of it back.
    conn = db.connect()
    with pytest.raises(psycopg2.Error), conn.cursor() as cur:
        cur.execute(script(GUARDIANS) + "\nSELECT 1/0;\n")
    conn.close()
    grant_createdb(db)

    entry = evidence_of(info, project, GUARDIANS)

    assert entry["verdict"] == "not_applied" and entry["recommended_action"] == "resolve_rolled_back"
    assert presence(entry) == [False] * 5
    assert entry["shadow"]["status"] == "matches_before" and entry["probe_verdict"] == "not_applied"
    assert shadow_databases(db) == []


def test_not_applied_without_a_shadow_database_uses_probes_alone(project, db, info):
    deploy_init(project)
    failed_deploy(project, db, GUARDIANS)

    entry = evidence_of(info, project, GUARDIANS)

    assert entry["verdict"] == "not_applied"
    assert entry["shadow"]["status"] == "unavailable" and "CREATEDB" in entry["shadow"]["message"]


def test_partial_statement_at_a_time_failed_at_statement_4(project, db, info):
    deploy_init(project)
    failed_deploy(project, db, GUARDIANS)
    run_statements(db, script(GUARDIANS), 3)
    grant_createdb(db)

    entry = evidence_of(info, project, GUARDIANS)

    assert entry["verdict"] == "partial" and entry["recommended_action"] == "stop"
    assert presence(entry) == [True, True, True, False, False]
    assert [s["kind"] for s in entry["statements"]] == [
        "create_table", "add_column", "create_unique_index", "create_index", "add_constraint"]
    assert entry["reason"].startswith("statements 1-3 present, 4-5 absent")
    assert entry["shadow"]["status"] == "differs" and entry["probe_verdict"] == "partial"


def test_partial_explicit_commit_inside_the_file(project, db, info):
    deploy_init(project)
    failed_deploy(project, db, EXPLICIT_COMMIT)
    # One simple query, as the native engine sends it; the ALTER of "Fee" times out on a busy table,
    # which rolls back only what came after the file's own COMMIT.
    holder = db.connect(autocommit=False)
    with holder.cursor() as cur:
        cur.execute('LOCK TABLE "Fee" IN ACCESS SHARE MODE')
    conn = db.connect()
    with pytest.raises(psycopg2.errors.LockNotAvailable), conn.cursor() as cur:
        cur.execute("SET lock_timeout = '200ms'")
        cur.execute(script(EXPLICIT_COMMIT))
    conn.close()
    holder.rollback()
    holder.close()
    grant_createdb(db)

    entry = evidence_of(info, project, EXPLICIT_COMMIT)

    assert entry["transaction_control"] is True
    assert [(s["kind"], s["present"]) for s in entry["statements"]] == [
        ("begin", None), ("create_table", True), ("commit", None), ("add_column", False), ("alter_column_type", False),
        ("add_constraint", False)]
    assert entry["verdict"] == "partial" and entry["shadow"]["status"] == "differs"


def test_table_made_by_hand_before_deploy_is_partial_never_applied(project, db, info):
    deploy_init(project)
    # Someone created the table by hand; deploy then fails on "already exists" (a real CLI failure).
    db.execute(script(GUARDIANS).split(";")[0])
    output = failed_deploy(project, db, GUARDIANS, block=False)
    assert "already exists" in output
    grant_createdb(db)

    entry = evidence_of(info, project, GUARDIANS)

    assert entry["verdict"] == "partial" and entry["recommended_action"] == "stop"
    assert presence(entry) == [True, False, False, False, False]
    assert entry["shadow"]["status"] == "differs"
    missing = {(d["kind"], d["name"]) for d in entry["shadow"]["differences_from_after"] if d["difference"] == "missing"}
    assert ("index", "public.Student_guardianId_idx") in missing
    assert ("constraint", "public.Student.Student_guardianId_fkey") in missing


def test_data_only_migration_is_unknown(project, db, info):
    deploy_init(project)
    db.execute("""INSERT INTO "School" ("name", "code") VALUES ('North', 'N');
                  INSERT INTO "User" ("email", "passwordHash", "schoolId") VALUES ('a@example.com', 'x', 1);
                  INSERT INTO "Student" ("userId", "legacyRoll") VALUES (1, 'N/A');""")
    # Fails on its own data ("N/A" is no integer): a genuine failure, nothing blocked.
    output = failed_deploy(project, db, DATA_ONLY, block=False)
    assert "invalid input syntax for type integer" in output
    grant_createdb(db)

    entry = evidence_of(info, project, DATA_ONLY)

    assert entry["verdict"] == "unknown" and entry["recommended_action"] == "stop"
    assert presence(entry) == [None, None]
    assert [s["kind"] for s in entry["statements"]] == ["update", "insert"]
    assert entry["shadow"]["status"] == "no_schema_change"


def test_shadow_url_database_is_used_then_left_empty_and_the_target_is_refused(project, db, info, pg_cluster):
    deploy_init(project)
    failed_deploy(project, db, GUARDIANS)
    run_statements(db, script(GUARDIANS), 3)
    shadow = pg_cluster.create_database()
    try:
        entry = evidence_of(info, project, GUARDIANS, shadow_url=shadow.url())
        assert entry["verdict"] == "partial" and entry["shadow"]["database"] == "shadow_url"
        assert entry["shadow"]["status"] == "differs"
        left = shadow.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = 'public'")
        assert left == [(0,)]
        assert shadow.execute("SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                              "WHERE n.nspname = 'public'") == [(0,)]

        same = info(migrations_dir=str(project.migrations_dir), evidence=True, shadow_url=db.url())
        assert same["_rc"] != 0 and "shadow_url points at the database being inspected" in same["msg"]
        assert db.owner.password not in same["_stdout"]

        shadow.execute('CREATE TABLE "Keep" ("id" INTEGER)')
        busy = info(migrations_dir=str(project.migrations_dir), evidence=True, shadow_url=shadow.url())
        assert busy["_rc"] != 0 and "not empty" in busy["msg"]
        assert shadow.execute("SELECT count(*) FROM \"Keep\"") == [(0,)]
    finally:
        pg_cluster.drop_database(shadow.name)


def test_evidence_needs_migrations_dir_and_is_absent_unless_asked(project, db, info):
    deploy_init(project)
    failed_deploy(project, db, GUARDIANS)

    missing = info(evidence=True)
    assert missing["_rc"] != 0 and "migrations_dir" in missing["msg"]

    plain = info(migrations_dir=str(project.migrations_dir))
    assert plain["_rc"] == 0 and "evidence" not in plain

    warned = info(migrations_dir=str(project.migrations_dir), shadow_url=db.url())
    assert warned["_rc"] == 0 and "shadow_url is only used" in str(warned.get("warnings"))


def test_no_failed_migration_means_empty_evidence(project, info):
    deploy_init(project)
    result = info(migrations_dir=str(project.migrations_dir), evidence=True)
    assert result["_rc"] == 0 and result["evidence"] == {}


# Every corpus migration, fully applied and not applied at all, with probes and replay: the expected
# verdict, never a wrong applied / not_applied. Opaque statements that may have run alone give unknown.
CORPUS_EXPECTED = {
    "20240301000000_grading_do_block": {"not_applied": "unknown"},  # the leading DO block may have committed alone
    "20240501000000_data_only": {"applied": "unknown", "not_applied": "unknown"},
}


CORPUS_NAMES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_every_corpus_migration_applied_and_not_applied(pg_cluster, name):
    from ansible_collections.prisma_ops.migrate.plugins.module_utils import evidence, replay
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import connect, parse_database_url
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import take_snapshot

    position = CORPUS_NAMES.index(name)
    owner = pg_cluster.create_role("corpus_%d" % position, createdb=True)
    got = {}
    for state in ("applied", "not_applied"):
        db = pg_cluster.create_database(owner=owner)
        try:
            conn = db.connect()
            for earlier in CORPUS_NAMES[:position + (1 if state == "applied" else 0)]:
                replay.apply_script(conn, script(earlier))
            conn.close()
            spec = parse_database_url(db.url())
            live = connect(spec)
            try:
                entry = evidence.migration_evidence(name, script(name), [(n, script(n)) for n in CORPUS_NAMES[:position]],
                                                    live, spec, take_snapshot(live))
            finally:
                live.close()
            got[state] = (entry["verdict"], entry["shadow"]["status"])
        finally:
            pg_cluster.drop_database(db.name)
    expected = {state: CORPUS_EXPECTED.get(name, {}).get(state, state) for state in ("applied", "not_applied")}
    assert {state: verdict for state, (verdict, _status) in got.items()} == expected
    # The replay ran each time, and agreed with the probes (or had nothing to see).
    assert got["applied"][1] in ("matches_after", "no_schema_change")
    assert got["not_applied"][1] in ("matches_before", "no_schema_change")
    admin = pg_cluster.admin()
    with admin.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = %s)", (owner.name,))
        leftovers = cur.fetchall()
    admin.close()
    assert leftovers == []
