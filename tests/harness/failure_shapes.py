"""Every failure shape of every migration of the failure corpus, built for real and judged in both modes.

For a project (tests/failure_corpus/<project>/<timestamp>_<name>/migration.sql) and a target migration N,
each shape is a state of a throwaway database that a failed deploy of N can really leave, on top of
migrations 1..N-1 applied:

- not_applied: nothing of N (the native engine's one implicit transaction rolled back);
- stuck_applied: all of N committed, only the history row failed;
- partial_k / all_but_last: statements 1..k sent one at a time on one connection, as native Prisma >= 7.4
  runs a file, then a failure at k+1 closes the connection. The file's own BEGIN/COMMIT take effect as
  they do there: statements inside an open BEGIN are rolled back, so a file that begins with BEGIN only
  leaves the states "committed through its COMMIT" (and nothing, and everything). States that repeat an
  earlier one are not built twice;
- hand_made_table: the first table N creates was made by hand beforehand, with N's own definition (and what
  that definition needs from earlier in N: its enum, its extension), and the deploy failed on "already exists"
  (SQLSTATE 42P07) at that table, with nothing else of N committed.

Each shape carries the verdicts that are RIGHT for it. With c the number of leading statements whose
effect holds:
- c covers no statement with a lasting effect: {not_applied, unknown}: resolving it rolled back and
  deploying again is exactly right;
- the statements after c have no lasting effect (only COMMIT, SET, ...): {applied, unknown}: the whole
  effect of N holds, so resolving it applied is right (a "partial" there would be safe, but wrong);
- otherwise {partial, unknown}: resolving applied loses the rest, rolled back re-runs what already ran.
Statements with no lasting effect are transaction control and SET/RESET only (decided from the parse,
never from the collection's own snapshot, so a snapshot bug cannot hide a wrong verdict). A data
statement (UPDATE...) or a DO block always has a lasting effect, even when the catalogs cannot show it.

One refinement, decided independently of the collection with pg_dump --schema-only: when the verdict is
applied (or not_applied) for a partial state, every statement between that state and the full (or empty)
one is DDL (no data, no DO block), and the schema dumps are identical, those statements changed nothing
here (DROP INDEX IF EXISTS of an absent index...): the verdict is right, and the case says so.

Databases: migrations 1..N-1 are applied once to a chain database. A file without transaction control or
CONCURRENTLY has each shape built inside a SAVEPOINT of one transaction there, judged, and rolled back (the
same DDL on the same server; PostgreSQL's catalogs are transactional). A file with BEGIN/COMMIT or CONCURRENTLY
has each shape built committed in a copy (CREATE DATABASE ... TEMPLATE), exactly as the engine leaves it.
Then N is applied to the chain. The replay runs once per (project, N) with replay.replay_in in a fresh
database; each case judges a copy of its result.

Which Prisma versions can leave each shape (Shape.left_by, decided with tests/harness/native_engine.py): native
Prisma 6.x-7.3 sends the file whole (nothing, what the file's own COMMITs kept, or everything with the row
failed); native Prisma >= 7.4 sends it one statement at a time when sqlparser 0.61 parses it (every prefix: there
"partial" is the ordinary failure) and whole when it cannot; the JS engine splits on ';' (every prefix up to the
first statement the split breaks). Every shape is still built and judged, whoever leaves it: a shape no engine
leaves (left_by empty) is what a hand edit, a crash or another tool can leave, and the verdict must be right there
too. The figures per family count only the shapes that family leaves.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from tests.harness.native_engine import FAMILIES, committed_prefix, runs
from tests.harness.pgcluster import Database, PgCluster, Role

CORPUS_ROOT = Path(__file__).resolve().parents[1] / "failure_corpus"

NOT_APPLIED_OK = frozenset(("not_applied", "unknown"))
APPLIED_OK = frozenset(("applied", "unknown"))
PARTIAL_OK = frozenset(("partial", "unknown"))
MODES = ("probes", "replay")
HAND_MADE_ERROR = {"sqlstate": "42P07", "message": "relation already exists"}


@dataclass(frozen=True)
class Project:
    name: str
    schema: str
    migrations: tuple  # ((folder name, migration.sql text), ...) in folder order


def load_project(path: Path) -> Project:
    """A project folder; its prisma.env (optional) names the schema the way Prisma does, with ?schema=."""
    schema = "public"
    env = path / "prisma.env"
    if env.exists():
        found = re.search(r"[?&]schema=([^&\"'\s]+)", env.read_text())
        if found:
            schema = found.group(1)
    migrations = tuple((p.name, (p / "migration.sql").read_text()) for p in sorted(path.iterdir())
                       if (p / "migration.sql").is_file())
    return Project(path.name, schema, migrations)


def projects(root: Path = CORPUS_ROOT) -> list:
    return [load_project(p) for p in sorted(root.iterdir()) if p.is_dir()]


# ---------------------------------------------------------------- shapes (pure: from the parse alone)


def _parse(script: str) -> list:
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
    return parse_script(script).statements


def no_lasting_effect(statement) -> bool:
    """Transaction control and SET leave nothing behind; every other statement may."""
    return statement.is_transaction_control or statement.node_type == "VariableSetStmt"


def right_verdicts(statements: list, held: int) -> frozenset:
    if all(no_lasting_effect(s) for s in statements[:held]):
        return NOT_APPLIED_OK
    if all(no_lasting_effect(s) for s in statements[held:]):
        return APPLIED_OK
    return PARTIAL_OK


@dataclass
class Shape:
    name: str
    held: int               # leading statements whose effect holds
    right: frozenset
    why: str
    run: tuple = ()          # statement texts to send one at a time (None: the whole file in one query)
    whole: bool = False
    error: dict | None = None
    left_by: frozenset = frozenset()  # the engine families (native_engine.FAMILIES) whose failed deploy leaves it


def plan_shapes(script: str) -> list:
    """Every state a failed deploy of this file can leave, with the verdicts right for each and who leaves it."""
    statements = _parse(script)
    total = len(statements)
    engines = runs(script, statements)
    states = {family: run.states() for family, run in engines.items()}

    def left_by(held: int) -> frozenset:
        return frozenset(family for family in FAMILIES if held in states[family])

    shapes = [Shape("not_applied", 0, right_verdicts(statements, 0), "nothing of the file committed",
                    left_by=left_by(0)),
              Shape("stuck_applied", total, APPLIED_OK, "the whole file committed, the history row failed", whole=True,
                    left_by=left_by(total))]
    seen = {0, total}
    for k in range(1, total):
        held = committed_prefix(statements, k)
        if held in seen:
            continue  # the same state as a shape already built (an open BEGIN rolled back)
        seen.add(held)
        name = "all_but_last" if k == total - 1 else "partial_%d" % k
        why = "statements 1-%d committed one by one, statement %d failed" % (k, k + 1)
        if held != k:
            why += " (an open BEGIN rolled back: 1-%d hold)" % held
        shapes.append(Shape(name, held, right_verdicts(statements, held), why,
                            run=tuple(s.sql for s in statements[:k]), left_by=left_by(held)))
    tables = [position for position, s in enumerate(statements, start=1) if s.kind == "create_table"]
    if tables:
        # The table, and what its definition needs from earlier in the file (types, extensions), made by hand;
        # then deploy failed on "already exists" at that table: every family that gets that far leaves it.
        upto = tables[0]
        shapes.append(Shape("hand_made_table", upto, right_verdicts(statements, upto),
                            "table %s (and statements 1-%d before it) made by hand first; deploy failed on 'already "
                            "exists'" % (statements[upto - 1].target, upto - 1) if upto > 1 else
                            "table %s made by hand first; deploy failed on 'already exists'" % statements[0].target,
                            run=tuple(s.sql for s in statements[:upto] if not s.is_transaction_control),
                            error=HAND_MADE_ERROR,  # by hand: committed, whatever the file's BEGIN says
                            left_by=frozenset(f for f in FAMILIES if engines[f].held_after_failure(upto) is not None)))
    return shapes


# ---------------------------------------------------------------- building and judging for real


@dataclass
class CaseResult:
    project: str
    migration: str
    shape: str
    mode: str
    verdict: str
    right: frozenset
    outcome: str             # right | safe_wrong (partial where it should know) | wrong (applied/not_applied wrongly)
    reason: str
    probe_verdict: str | None
    shadow_status: str | None
    note: str = ""
    left_by: frozenset = frozenset()

    @property
    def key(self) -> tuple:
        return (self.project, self.migration, self.shape, self.mode)

    def as_dict(self) -> dict:
        return {"project": self.project, "migration": self.migration, "shape": self.shape, "mode": self.mode,
                "verdict": self.verdict, "right": sorted(self.right), "outcome": self.outcome,
                "reason": self.reason, "probe_verdict": self.probe_verdict, "shadow_status": self.shadow_status,
                "note": self.note, "left_by": sorted(self.left_by)}


def _set_path(cur, schema: str) -> None:
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import quote_ident
    cur.execute("SET search_path TO %s" % quote_ident(schema))


def build_shape(db: Database, schema: str, shape: Shape, script: str) -> None:
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import apply_script
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            _set_path(cur, schema)
        if shape.whole:
            apply_script(conn, script)
            return
        with conn.cursor() as cur:
            for sql in shape.run:
                cur.execute(sql)
    finally:
        conn.close()  # the engine's failure: an open BEGIN of the file is rolled back here


def schema_dump(cluster: PgCluster, dbname: str) -> str:
    """pg_dump --schema-only: the oracle for "these statements changed nothing", independent of the collection."""
    env = dict(os.environ, PGPASSWORD=cluster.superuser.password)
    out = subprocess.run([str(cluster.bindir / "pg_dump"), "--schema-only", "--no-owner", "-h", "127.0.0.1", "-p",
                          str(cluster.port), "-U", cluster.superuser.name, dbname],
                         check=True, capture_output=True, text=True, timeout=120, env=env)
    # Comments, and the \restrict / \unrestrict lines (a random key per dump), are not the schema.
    return "\n".join(line for line in out.stdout.splitlines()
                     if not line.startswith(("--", "\\restrict ", "\\unrestrict ")))


def _ddl_only(statements: list) -> bool:
    return all(not s.is_data and s.kind != "do_block" for s in statements)


def needs_own_database(statements: list) -> bool:
    """A file with its own transaction control or CONCURRENTLY cannot be built inside a savepoint."""
    return any(s.is_transaction_control or s.concurrent for s in statements)


class Judge:
    """Judges live snapshots of one migration N in both modes, against each shape's right verdicts."""

    def __init__(self, cluster: PgCluster, project: Project, index: int, chain: Database, replay_result):
        self.cluster, self.project, self.index, self.chain = cluster, project, index, chain
        self.name, self.script = project.migrations[index]
        self.statements = _parse(self.script)
        self.replay_result = replay_result
        self._dumps: dict = {}

    def judge(self, live: dict, shape: Shape) -> list:
        from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import judge_migration
        from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import ShadowResult
        results = []
        for mode in MODES:
            # judge_migration compares the replay with the live schema in place: each case gets its own copy.
            replay = ShadowResult.from_json(self.replay_result.to_json()) if mode == "replay" else None
            entry = judge_migration(self.name, self.script, live, self.project.schema, shape.error, replay)
            verdict = entry["verdict"]
            outcome = "right"
            if verdict not in shape.right:
                outcome = "wrong" if verdict in ("applied", "not_applied") else "safe_wrong"
            results.append(CaseResult(self.project.name, self.name, shape.name, mode, verdict, shape.right, outcome,
                                      entry.get("reason", ""), entry.get("probe_verdict"),
                                      (entry.get("shadow") or {}).get("status"), left_by=shape.left_by))
        return results

    def adjudicate(self, results: list, shape: Shape) -> None:
        """Turn a "wrong" applied / not_applied into right when pg_dump shows the statements between changed nothing.

        Runs on committed databases only (after the savepoint of the case was rolled back).
        """
        for result in results:
            if result.outcome != "wrong":
                continue
            applied = result.verdict == "applied"
            between = self.statements[shape.held:] if applied else self.statements[:shape.held]
            if not _ddl_only(between):
                continue
            with self._materialized(shape) as case:
                same = schema_dump(self.cluster, case.name) == self._reference("full" if applied else "base")
            if same:
                result.outcome = "right"
                result.note = ("pg_dump --schema-only equals the %s state: the statements between changed nothing here"
                               % ("full" if applied else "base"))

    def _reference(self, which: str) -> str:
        if which not in self._dumps:
            if which == "base":
                self._dumps[which] = schema_dump(self.cluster, self.chain.name)
            else:
                with self._materialized(Shape("stuck_applied", len(self.statements), APPLIED_OK, "", whole=True)) as db:
                    self._dumps[which] = schema_dump(self.cluster, db.name)
        return self._dumps[which]

    @contextlib.contextmanager
    def _materialized(self, shape: Shape) -> Iterator[Database]:
        case = self.chain.copy("fc_case_%s" % secrets.token_hex(5))
        try:
            build_shape(case, self.project.schema, shape, self.script)
            yield case
        finally:
            self.cluster.drop_database(case.name)


def replay_once(cluster: PgCluster, owner: Role, project: Project, index: int):
    """The replay of 1..N-1 and N in a fresh database on the same cluster (a host's scratch database)."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import replay_in
    scratch = cluster.create_database("fc_replay_%s" % secrets.token_hex(4), owner=owner)
    try:
        conn = scratch.connect()
        try:
            name, script = project.migrations[index]
            return replay_in(conn, list(project.migrations[:index]), script, project.schema, "temporary")
        finally:
            conn.close()
    finally:
        cluster.drop_database(scratch.name)


def _cases_in_savepoints(chain: Database, project: Project, judge: Judge, shapes: list) -> list:
    """Each shape built inside a savepoint of one transaction on the chain database, judged, rolled back.

    The same DDL on the same server as a committed build (the snapshot reads the transaction's own catalogs);
    only files without transaction control or CONCURRENTLY come here. Returns once the connection is closed:
    adjudication copies the chain database and dumps it, which a session there would block.
    """
    done = []
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import apply_script
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import take_snapshot
    conn = chain.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            _set_path(cur, project.schema)
        for shape in shapes:
            with conn.cursor() as cur:
                cur.execute("SAVEPOINT shape")
            if shape.whole:
                apply_script(conn, judge.script)
            else:
                with conn.cursor() as cur:
                    for sql in shape.run:
                        cur.execute(sql)
            results = judge.judge(take_snapshot(conn), shape)
            with conn.cursor() as cur:
                cur.execute("ROLLBACK TO SAVEPOINT shape")
            done.append((shape, results))
        conn.rollback()
    finally:
        conn.close()
    return done


def _cases_in_copies(chain: Database, project: Project, judge: Judge, shapes: list) -> Iterator[tuple]:
    """Each shape built in its own copy of the chain database, committed exactly as the engine leaves it."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import take_snapshot
    for shape in shapes:
        with judge._materialized(shape) as case:
            conn = case.connect()
            try:
                live = take_snapshot(conn)
            finally:
                conn.close()
        yield shape, judge.judge(live, shape)


def run_project(cluster: PgCluster, project: Project, owner: Role,
                on_migration: Callable | None = None) -> Iterator[CaseResult]:
    """Every migration of the project as N, every shape, both modes."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import apply_script
    chain = cluster.create_database("fc_%s_%s" % (project.name[:20], secrets.token_hex(3)), owner=owner)
    try:
        if project.schema != "public":
            chain.execute('CREATE SCHEMA "%s"' % project.schema.replace('"', '""'))  # Prisma makes it before migrating
        for index, (name, script) in enumerate(project.migrations):
            replayed = replay_once(cluster, owner, project, index)
            if on_migration is not None:
                on_migration(project, name, replayed)
            judge = Judge(cluster, project, index, chain, replayed)
            shapes = plan_shapes(script)
            build = _cases_in_copies if needs_own_database(judge.statements) else _cases_in_savepoints
            for shape, results in build(chain, project, judge, shapes):
                judge.adjudicate(results, shape)
                yield from results
            conn = chain.connect()
            try:
                with conn.cursor() as cur:
                    _set_path(cur, project.schema)
                apply_script(conn, script)  # the chain moves on to 1..N
            finally:
                conn.close()
    finally:
        cluster.drop_database(chain.name)


@dataclass
class Summary:
    results: list = field(default_factory=list)

    def per_mode(self) -> dict:
        out = {}
        for mode in MODES:
            rows = [r for r in self.results if r.mode == mode]
            out[mode] = {"cases": len(rows), "wrong": sum(r.outcome == "wrong" for r in rows),
                         "safe_wrong": sum(r.outcome == "safe_wrong" for r in rows),
                         "unknown": sum(r.verdict == "unknown" for r in rows),
                         "unknown_rate": round(sum(r.verdict == "unknown" for r in rows) / len(rows), 3) if rows else 0.0}
        return out

    def per_family(self) -> dict:
        """Per engine family (and "none": shapes no Prisma engine leaves), per mode: cases, wrong, unknown."""
        out = {}
        for family in FAMILIES + ("none",):
            rows = [r for r in self.results if (family in r.left_by if family != "none" else not r.left_by)]
            out[family] = {mode: {"cases": sum(r.mode == mode for r in rows),
                                  "wrong": sum(r.mode == mode and r.outcome == "wrong" for r in rows),
                                  "unknown": sum(r.mode == mode and r.verdict == "unknown" for r in rows)}
                           for mode in MODES}
        return out

    def wrong(self) -> dict:
        return {r.key: r for r in self.results if r.outcome == "wrong"}
