"""prisma_migrate_resolve (native) against the real Prisma CLI, 6.19.3 and 7.10.1, on twin databases.

Each starting state is made once by the real CLI; `CREATE DATABASE ... TEMPLATE` copies it into
twins; the module resolves on one twin and `prisma migrate resolve` on the other; then the two
`_prisma_migrations` tables (DDL and rows) are compared column by column. Rows that existed before
compare exactly; new ids must be v4 UUIDs and new timestamps compare by their order.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness.modules import run_module
from tests.harness.pgcluster import Database

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.prisma, pytest.mark.both_prisma_clis]

INIT = 'CREATE TABLE "User" ("id" SERIAL NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));\n'
BROKEN = 'CREATE TABLE "Broken" ("id" INTEGER);\nSELECT 1/0;\n'
LATER = 'CREATE TABLE "Later" ("id" INTEGER);\n'
M_INIT, M_BROKEN, M_LATER = "20250101000000_init", "20250102000000_broken", "20250103000000_later"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
COLUMNS = "id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count"


@pytest.fixture(scope="module")
def starting_states(pg_cluster, tmp_path_factory, prisma_version):
    """Every starting state, made once per CLI version by one chain of its real calls, kept as template databases.

    kind -> (snapshot database, migration to resolve, project whose folder and CLI to use).
    """
    from tests.harness.prisma import PrismaProject
    base = pg_cluster.create_database()
    root = tmp_path_factory.mktemp("compat")
    project = PrismaProject.create(root / "app", base.url(), version=prisma_version)
    for name, script in ((M_INIT, INIT), (M_BROKEN, BROKEN), (M_LATER, LATER)):
        project.add_migration(name, script)
    # The same database seen from a checkout that lost the failed migration's folder.
    no_broken = PrismaProject.create(root / "app_without_broken", base.url(), version=prisma_version)
    for name, script in ((M_INIT, INIT), (M_LATER, LATER)):
        no_broken.add_migration(name, script)
    snaps = {}

    def snap(label: str) -> Database:
        snaps[label] = base.copy("%s_%s" % (base.name, label))
        return snaps[label]

    snap("empty")
    assert project.deploy().returncode == 1                      # init applied, broken failed, later never run
    failed = snap("failed")
    assert project.resolve(M_BROKEN, "rolled_back").returncode == 0
    snap("rolled_back")
    assert project.deploy().returncode == 1                      # fails again: "Broken" exists (JS engine)
    snap("failed_twice")
    snaps["resolved_applied"] = failed.copy("%s_resolved_applied" % base.name)
    assert project.cli("migrate", "resolve", "--applied", M_BROKEN,
                       database_url=snaps["resolved_applied"].url()).returncode == 0
    states = {
        "failed_once": (snaps["failed"], M_BROKEN, project),
        "failed_twice": (snaps["failed_twice"], M_BROKEN, project),
        "already_rolled_back": (snaps["rolled_back"], M_BROKEN, project),
        "already_applied": (snaps["failed"], M_INIT, project),
        "resolved_applied": (snaps["resolved_applied"], M_BROKEN, project),
        "no_history_table": (snaps["empty"], M_BROKEN, project),
        "never_recorded": (snaps["failed"], M_LATER, project),
        "failed_missing_locally": (snaps["failed"], M_BROKEN, no_broken),
    }
    copies = []

    def native(kind, state, target):
        _snapshot, name, proj = states[kind]
        return run_module("prisma_migrate_resolve", {
            "database_url": target.url(), "name": name, "state": state, "method": "native",
            "migrations_dir": str(proj.migrations_dir)})

    def cli(kind, state, target):
        _snapshot, name, proj = states[kind]
        flag = "--applied" if state == "applied" else "--rolled-back"
        return proj.cli("migrate", "resolve", flag, name, database_url=target.url())

    # All 32 runs in one pool: the CLI is CPU-bound start-up, so this keeps both cores busy.
    futures = {}
    with ThreadPoolExecutor(4) as pool:
        for kind, (snapshot, _name, _proj) in states.items():
            for state in ("applied", "rolled_back"):
                for who, run in (("native", native), ("cli", cli)):
                    target = snapshot.copy("%s_%d" % (base.name, len(copies)))
                    copies.append(target)
                    futures[(kind, state, who)] = (target, pool.submit(run, kind, state, target))
        runs = {key: (target, future.result()) for key, (target, future) in futures.items()}
    yield states, runs
    for database in copies + list(snaps.values()) + [base]:
        pg_cluster.drop_database(database.name)


def table_ddl(db: Database):
    """The table as the catalogs describe it, or None when it does not exist."""
    if not db.execute("SELECT to_regclass('public._prisma_migrations') IS NOT NULL")[0][0]:
        return None
    columns = db.execute("SELECT column_name, data_type, character_maximum_length, is_nullable, column_default, "
                         "ordinal_position FROM information_schema.columns WHERE table_schema = 'public' AND "
                         "table_name = '_prisma_migrations' ORDER BY ordinal_position")
    constraints = db.execute("SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                             "WHERE conrelid = 'public._prisma_migrations'::regclass ORDER BY conname")
    indexes = db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND "
                         "tablename = '_prisma_migrations' ORDER BY indexname")
    owner = db.execute("SELECT tableowner FROM pg_tables WHERE tablename = '_prisma_migrations'")
    return columns, constraints, indexes, owner


def rows_of(db: Database) -> list:
    if table_ddl(db) is None:
        return []
    return db.execute("SELECT %s FROM _prisma_migrations ORDER BY started_at, id" % COLUMNS)


def normalized(rows: list, before: list) -> list:
    """Rows with new ids and new timestamps replaced by tokens that keep their pattern and order."""
    old_ids = {r[0] for r in before}
    old_times = {t for r in before for t in (r[2], r[5], r[6]) if t is not None}
    new_times = sorted({t for r in rows for t in (r[2], r[5], r[6]) if t is not None and t not in old_times})
    newest_old = max(old_times) if old_times else None
    out = []
    for r in rows:
        rid = r[0]
        if rid not in old_ids:
            assert UUID4.match(rid), rid
            rid = "<new uuid>"

        def stamp(value):
            if value is None or value in old_times:
                return value
            assert newest_old is None or value > newest_old  # written now, after everything that was there
            return "<new #%d>" % new_times.index(value)
        out.append((rid, r[1], stamp(r[2]), r[3], r[4], stamp(r[5]), stamp(r[6]), r[7]))
    return out


def native_outcome(result: dict) -> str:
    if result.get("failed"):
        return "refused %s" % result.get("code")
    return "changed" if result["changed"] else "unchanged"


def cli_outcome(cli) -> str:
    if cli.returncode == 0:
        return "exit 0"
    first_error = next((line for line in cli.output.splitlines() if line.startswith("Error:")), "no Error: line")
    return "exit %d %s" % (cli.returncode, cli.error_code or first_error[:60])


# (starting state) -> {requested state: (native outcome, CLI outcome)}
EXPECTED = {
    "failed_once": {"applied": ("changed", "exit 0"), "rolled_back": ("changed", "exit 0")},
    "failed_twice": {"applied": ("changed", "exit 0"), "rolled_back": ("changed", "exit 0")},
    "already_rolled_back": {"applied": ("changed", "exit 0"), "rolled_back": ("unchanged", "exit 0")},
    "already_applied": {"applied": ("unchanged", "exit 1 P3008"), "rolled_back": ("refused P3012", "exit 1 P3012")},
    # Deliberate: Prisma exits 0 writing nothing; the migration is applied, so "rolled back" would be false.
    "resolved_applied": {"applied": ("unchanged", "exit 1 P3008"), "rolled_back": ("refused P3012", "exit 0")},
    "no_history_table": {
        "applied": ("changed", "exit 0"),
        "rolled_back": ("refused no_migrations_table",
                        "exit 1 Error: Invariant violation: called markMigrationRolledBack o"),
    },
    "never_recorded": {"applied": ("changed", "exit 0"), "rolled_back": ("refused P3011", "exit 1 P3011")},
    "failed_missing_locally": {"applied": ("refused P3017", "exit 1 P3017"), "rolled_back": ("changed", "exit 0")},
}


def check_case(kind: str, state: str, states: dict, runs: dict) -> None:
    snapshot, name, _proj = states[kind]
    base_rows, base_ddl = rows_of(snapshot), table_ddl(snapshot)
    nat_db, result = runs[(kind, state, "native")]
    cli_db, cli = runs[(kind, state, "cli")]

    got = (native_outcome(result), cli_outcome(cli))

    assert got == EXPECTED[kind][state], (got, result.get("msg"), cli.output)
    # The same table, column by column: DDL from the catalogs, then every row.
    assert table_ddl(nat_db) == table_ddl(cli_db)
    nat_rows, cli_rows = rows_of(nat_db), rows_of(cli_db)
    assert normalized(nat_rows, base_rows) == normalized(cli_rows, base_rows)
    if got[0] == "changed":
        assert nat_rows != base_rows and result["resolved"] == [name] and result["method"] == "native"
    else:
        assert nat_rows == base_rows and table_ddl(nat_db) == base_ddl and result["resolved"] == []


def test_native_writes_what_the_prisma_cli_writes(starting_states):
    """One test for all 16 cases, so pytest-xdist runs the shared 32-run fixture on one worker only;
    every mismatch is reported, not just the first."""
    states, runs = starting_states
    problems = []
    cases = [(kind, state) for kind in EXPECTED for state in ("applied", "rolled_back")]
    for kind, state in cases:
        try:
            check_case(kind, state, states, runs)
        except AssertionError as exc:
            problems.append("%s -> %s: %s" % (kind, state, str(exc)[:3000]))
    assert len(cases) == 16 and not problems, "\n\n".join(problems)
