"""The shadow_url scratch database on real PostgreSQL: the replay runs there in one transaction that is always
rolled back, so nothing is ever dropped from it (a database holding anything, even only `_prisma_migrations`, is
refused and kept as it was, in check mode too), a migration's own COMMIT cannot make the replay's work stay, and hosts
that share one shadow_url (the docs suggest one vault variable) get the same verdicts as one at a time.
"""

from __future__ import annotations

import threading

import pytest

from tests.harness.scenario import CORPUS, GUARDIANS, INIT

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

NAMES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def script(name: str) -> str:
    return (CORPUS / name / "migration.sql").read_text()


def user_objects(database) -> list:
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import user_objects as found
    conn = database.connect()
    try:
        return found(conn)
    finally:
        conn.close()


def live_database(pg_cluster, applied: list, partial: tuple | None = None):
    """A database holding the corpus migrations `applied`, then the first k statements of `partial` (name, k)."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import apply_script
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
    db = pg_cluster.create_database()
    conn = db.connect()
    try:
        for name in applied:
            apply_script(conn, script(name))
        if partial:
            with conn.cursor() as cur:
                for statement in parse_script(script(partial[0])).statements[:partial[1]]:
                    cur.execute(statement.sql)
    finally:
        conn.close()
    return db


def evidence(db, name: str, shadow_url: str) -> dict:
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import connect, parse_database_url
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import migration_evidence
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import take_snapshot
    spec = parse_database_url(db.url())
    live = connect(spec)
    try:
        prior = [(n, script(n)) for n in NAMES[:NAMES.index(name)]]
        return migration_evidence(name, script(name), prior, live, spec, take_snapshot(live), shadow_url=shadow_url)
    finally:
        live.close()


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_a_shadow_url_database_holding_only_the_history_table_is_refused_and_kept(
        info, pg_cluster, tmp_path, check_mode):
    live = live_database(pg_cluster, [INIT])
    shadow = pg_cluster.create_database()
    try:
        shadow.execute('CREATE TABLE "_prisma_migrations" ("id" VARCHAR(36) PRIMARY KEY, "migration_name" TEXT)')
        shadow.execute("INSERT INTO \"_prisma_migrations\" VALUES ('1', 'someone elses history')")
        result = evidence_of_module(info, live, shadow.url(), check_mode, tmp_path / "migrations")
        assert result["_rc"] != 0, result
        assert "is not empty" in result["msg"] and "_prisma_migrations" in result["msg"], result["msg"]
        assert not result.get("changed")
        assert shadow.execute('SELECT migration_name FROM "_prisma_migrations"') == [("someone elses history",)]
    finally:
        pg_cluster.drop_database(shadow.name)
        pg_cluster.drop_database(live.name)


def evidence_of_module(info, live, shadow_url: str, check_mode: bool, migrations) -> dict:
    """prisma_migration_info with evidence against `live` that has a failed GUARDIANS row."""
    live.execute('CREATE TABLE "_prisma_migrations" ("id" VARCHAR(36) PRIMARY KEY, "checksum" VARCHAR(64) NOT NULL, '
                 '"finished_at" TIMESTAMPTZ, "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, '
                 '"rolled_back_at" TIMESTAMPTZ, "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), '
                 '"applied_steps_count" INTEGER NOT NULL DEFAULT 0)')
    live.execute("INSERT INTO \"_prisma_migrations\" (id, checksum, migration_name) VALUES ('f', 'x', %s)",
                 (GUARDIANS,))
    return info(check_mode=check_mode, database_url=live.url(), evidence=True, shadow_url=shadow_url,
                migrations_dir=str(corpus_folder(migrations, [INIT, GUARDIANS])))


def corpus_folder(root, names: list):
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).mkdir(exist_ok=True)
        (root / name / "migration.sql").write_text(script(name))
    return root


def test_a_migrations_own_commit_leaves_nothing_in_the_shadow_url_database(pg_cluster):
    target = "20240415000000_explicit_commit"
    assert "COMMIT" in script(target)
    upto = NAMES[:NAMES.index(target) + 1]
    live = live_database(pg_cluster, upto)
    shadow = pg_cluster.create_database()
    try:
        entry = evidence(live, target, shadow.url())
        assert entry["shadow"]["database"] == "shadow_url"
        assert entry["shadow"]["status"] == "matches_after", entry["shadow"]
        assert user_objects(shadow) == []
    finally:
        pg_cluster.drop_database(shadow.name)
        pg_cluster.drop_database(live.name)


def test_hosts_sharing_one_shadow_url_get_the_verdicts_of_one_at_a_time(pg_cluster):
    states = {"untouched": None, "one statement": (GUARDIANS, 1), "two statements": (GUARDIANS, 2),
              "four statements": (GUARDIANS, 4), "all": "all"}  # each twice: ten hosts at once
    lives = {}
    for label, partial in states.items():
        applied = [INIT, GUARDIANS] if partial == "all" else [INIT]
        lives[label] = live_database(pg_cluster, applied, None if partial == "all" else partial)
    shadow = pg_cluster.create_database()
    try:
        alone = {label: summary(evidence(db, GUARDIANS, shadow.url())) for label, db in lives.items()}
        assert alone["untouched"][1] == "matches_before" and alone["all"][1] == "matches_after", alone
        assert alone["two statements"][1] == "differs", alone

        together, errors = {}, []
        barrier = threading.Barrier(len(lives) * 2)

        def host(label: str, db, slot: str) -> None:
            try:
                barrier.wait(timeout=120)
                together[(label, slot)] = summary(evidence(db, GUARDIANS, shadow.url()))
            except Exception as exc:  # reported below with the host it happened on
                errors.append((label, repr(exc)))

        threads = [threading.Thread(target=host, args=(label, db, slot)) for label, db in lives.items()
                   for slot in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not errors and not any(t.is_alive() for t in threads), errors
        assert together == {(label, slot): alone[label] for label in lives for slot in ("a", "b")}
        assert user_objects(shadow) == []
    finally:
        pg_cluster.drop_database(shadow.name)
        for db in lives.values():
            pg_cluster.drop_database(db.name)


def summary(entry: dict) -> tuple:
    return entry["verdict"], entry["shadow"]["status"], len(entry["shadow"]["differences_from_after"])
