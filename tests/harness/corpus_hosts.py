"""Failure-corpus cases as local Ansible hosts: one database and one Prisma project folder per case.

For a project of tests/failure_corpus, a target migration N and a failure shape of N (tests/harness/failure_shapes.py),
a host's database holds what a failed deploy of N leaves there:

- migrations 1..N-1 applied for real: _prisma_migrations made by the real Prisma CLI (a deploy of an empty
  folder), each file run as the native engine runs it (the whole file in one query), each row written as Prisma
  writes it (sha256 checksum of the file, finished_at set, applied_steps_count 1). They are applied once per
  project to a chain database, which moves on one migration at a time; each host's database is a copy of the
  chain (CREATE DATABASE ... TEMPLATE) taken before N is applied there;
- the shape's state of N, built by failure_shapes' own builder (statements sent one at a time on one connection,
  the file's BEGIN/COMMIT taking effect, or the whole file for stuck_applied);
- N's row failed as Prisma writes it (finished_at and rolled_back_at NULL, applied_steps_count 0, the native
  engine's log text; the hand_made_table shape fails with 42P07 "already exists").

The host's project folder holds migrations 1..N (N is the last) and a .env with DATABASE_URL (with ?schema= when
the project migrates another schema than public). After N is applied to the chain, a pg_dump --schema-only of
the chain is the clean apply of 1..N (in a fresh database) that a recovered host must equal.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.failure_shapes import Project, Shape, build_shape, plan_shapes
from tests.harness.pgcluster import Database, PgCluster
from tests.harness.prisma import PrismaProject
from tests.harness.scenario import local_inventory, write_env_file

# What the native engine writes into a failed row's logs (tests/unit/test_history_model.py has a real one).
FAILED_LOG = (
    "A migration failed to apply. New migrations cannot be applied before the error is recovered from. Read more "
    "about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve\n\n"
    "Migration name: {name}\n\nDatabase error code: {code}\n\nDatabase error:\nERROR: {message}\n\n")
# A failure that says nothing about what ran (the evidence reads only duplicate-object SQLSTATEs from it).
NEUTRAL_ERROR = ("55P03", "canceling statement due to lock timeout")


# A dollar-quoted body ($$ ... $$, $fn$ ... $fn$): a DO block or a function.
DOLLAR_QUOTE = re.compile(r"\$[A-Za-z_0-9]*\$")


def offline_cli_can_deploy(script: str) -> bool:
    """Whether the test harness's Prisma CLI can run this file: its JS engine splits it on ';', so a dollar-quoted
    body is broken apart (unterminated dollar-quoted string); production's native engine sends the file whole."""
    return DOLLAR_QUOTE.search(script) is None


def select_shapes(script: str) -> list:
    """The shapes a corpus migration contributes: nothing, everything, the middle partial, the hand-made table.

    The middle partial is the middle one of the partial states failure_shapes plans (partial_k ... all_but_last, in
    the order of k), so a file that can only leave "all but last" contributes that one. not_applied is left out for
    a file the harness's CLI cannot deploy (offline_cli_can_deploy): its recovery is `resolve --rolled-back` then
    the deploy command, and that deploy would fail on the CLI's own split, not on the collection.
    """
    shapes = plan_shapes(script)
    by_name = {s.name: s for s in shapes}
    partials = [s for s in shapes if s.name.startswith("partial_") or s.name == "all_but_last"]
    chosen = ([by_name["not_applied"]] if offline_cli_can_deploy(script) else []) + [by_name["stuck_applied"]]
    if partials:
        chosen.append(partials[len(partials) // 2])
    if "hand_made_table" in by_name:
        chosen.append(by_name["hand_made_table"])
    return chosen


def schema_dump(db: Database) -> str:
    """pg_dump --schema-only (as tests/integration/test_complete.py schema_dump): the \\restrict key is not the schema."""
    cluster = db.cluster
    proc = subprocess.run([str(cluster.bindir / "pg_dump"), "--schema-only", "--no-owner", "-h", "127.0.0.1", "-p",
                           str(cluster.port), "-U", cluster.superuser.name, db.name],
                          env={**os.environ, "PGPASSWORD": cluster.superuser.password}, capture_output=True, text=True,
                          check=True, timeout=120)
    return "\n".join(line for line in proc.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def history_rows(db: Database, schema: str) -> list:
    """Every _prisma_migrations row, every column, as text (JSON-able and comparable)."""
    table = '"%s"."_prisma_migrations"' % schema.replace('"', '""')
    return [list(map(lambda v: None if v is None else str(v), row)) for row in db.execute(
        "SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count "
        "FROM %s ORDER BY started_at, id" % table)]


@dataclass
class CorpusHost:
    name: str                # the inventory host name
    project: Project
    index: int               # N - 1
    shape: Shape
    db: Database
    app: PrismaProject
    workdir: Path            # backups/ and reports/ of this host
    reference: str           # pg_dump --schema-only of a clean apply of 1..N
    before_dump: str = ""
    before_rows: list | None = None
    overrides: dict = field(default_factory=dict)  # role variables of this host only (the controls' wrong orders)

    @property
    def migration(self) -> str:
        return self.project.migrations[self.index][0]

    @property
    def report_path(self) -> Path:
        return self.workdir / "reports" / ("%s.json" % self.name)

    def report(self) -> dict | None:
        return json.loads(self.report_path.read_text()) if self.report_path.exists() else None

    def snapshot(self) -> None:
        self.before_dump, self.before_rows = schema_dump(self.db), history_rows(self.db, self.project.schema)


def _url(db: Database, project: Project) -> str:
    return db.url(schema=project.schema) if project.schema != "public" else db.url()


def _write_failed_row(db: Database, project: Project, index: int, shape: Shape) -> None:
    name, script = project.migrations[index]
    if shape.error:  # hand_made_table: the table N creates first already exists
        target = [s for s in _statements(script) if s.kind == "create_table"][0].target
        code, message = shape.error["sqlstate"], 'relation "%s" already exists' % target.split(".")[-1].strip('"')
    else:
        code, message = NEUTRAL_ERROR
    table = '"%s"."_prisma_migrations"' % project.schema.replace('"', '""')
    db.execute("INSERT INTO %s (id, checksum, migration_name, logs, started_at, applied_steps_count) "
               "VALUES (%%s, %%s, %%s, %%s, now(), 0)" % table,
               (str(uuid.uuid4()), hashlib.sha256(script.encode("utf-8")).hexdigest(), name,
                FAILED_LOG.format(name=name, code=code, message=message)))


def _statements(script: str) -> list:
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
    return parse_script(script).statements


def _project_dir(root: Path, project: Project, upto: int, url: str) -> PrismaProject:
    app = PrismaProject.create(root, url)
    for name, script in project.migrations[:upto]:
        app.add_migration(name, script)
    write_env_file(app)
    return app


def build_hosts(cluster: PgCluster, workdir: Path, cases: dict, created: list, controls: tuple = ()) -> list:
    """One CorpusHost per (project, N index, shape) of `cases` ({Project: {index: [Shape, ...]}}), built for real.

    `controls`: (project name, N index, shape name, host name, role variables) of extra hosts, built the same way.
    Every database made is appended to `created` as soon as it exists, for the caller to drop.
    """
    hosts = []
    for project, chosen in cases.items():
        owner = cluster.create_role("rc_%s_%s" % (project.name[:20], secrets.token_hex(3)))  # no CREATEDB
        chain = cluster.create_database("rc_chain_%s_%s" % (project.name[:20], secrets.token_hex(3)), owner=owner)
        created.append(chain.name)
        # Prisma itself makes the schema and its _prisma_migrations (a deploy of an empty folder), as the first deploy.
        chain_app = PrismaProject.create(workdir / "chains" / project.name, _url(chain, project))
        first = chain_app.deploy()
        if first.returncode != 0:
            raise RuntimeError("prisma migrate deploy of an empty folder failed: %s" % first.output)
        for index, (name, script) in enumerate(project.migrations):
            extra = [(c[2], c[3], c[4]) for c in controls if c[:2] == (project.name, index)]
            if index > max(chosen, default=-1) and not extra:
                break
            wanted = [(shape.name, "%s-%02d-%s" % (project.name, index + 1, shape.name), {})
                      for shape in chosen.get(index, [])] + extra
            shapes = {shape.name: shape for shape in plan_shapes(script)}
            pending = []
            for shape_name, host, overrides in wanted:
                shape = shapes[shape_name]
                db = chain.copy("rc_%s" % secrets.token_hex(6))
                created.append(db.name)
                build_shape(db, project.schema, shape, script)
                _write_failed_row(db, project, index, shape)
                app = _project_dir(workdir / host / "app", project, index + 1, _url(db, project))
                pending.append(CorpusHost(host, project, index, shape, db, app, workdir / host, "", overrides=overrides))
            _apply(chain, project, name, script)
            reference = schema_dump(chain)
            for host in pending:
                host.reference = reference
            hosts.extend(pending)
    return hosts


def _apply(db: Database, project: Project, name: str, script: str) -> None:
    """Migration `name` applied as the native engine applies it, and its row written as Prisma writes it.

    Not through the test harness's Prisma CLI: its JS engine splits a file on ';' and breaks DO blocks and
    function bodies (see /work/shared/notes/offline-prisma.md); the native engine sends the file whole.
    """
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import apply_script
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import quote_ident
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET search_path TO %s" % quote_ident(project.schema))
            cur.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count) "
                        "VALUES (%s, %s, %s, now(), 0) RETURNING id",
                        (str(uuid.uuid4()), hashlib.sha256(script.encode("utf-8")).hexdigest(), name))
            row_id = cur.fetchone()[0]
        apply_script(conn, script)
        with conn.cursor() as cur:
            cur.execute("UPDATE _prisma_migrations SET finished_at = now(), applied_steps_count = 1 WHERE id = %s",
                        (row_id,))
    finally:
        conn.close()


def write_inventory(path: Path, hosts: list, python: str, **overrides) -> Path:
    """One inventory of every host (ansible_connection=local), each with scenario.local_inventory's variables."""
    merged = {}
    for host in hosts:
        single = local_inventory(host.workdir, host.app, host.db.name, python, host=host.name,
                                 **{**overrides, **host.overrides})
        merged.update(json.loads(single.read_text())["local"]["hosts"])
    path.write_text(json.dumps({"local": {"hosts": merged}}, indent=1))
    return path
