"""How each Prisma engine family runs a migration.sql, and which states a failure at statement k can leave.

Three families run a script differently (shared/reference/prisma-migrate.md section 5, shared/notes/prisma7.md):

- NATIVE_WHOLE, native schema engine of Prisma 6.x up to 7.3: the whole file in one simple-protocol query,
  which PostgreSQL runs as one implicit transaction. A failure at statement k leaves what the file's own last
  COMMIT before k committed (nothing, for a file without COMMIT). A CONCURRENTLY statement in a file of more
  than one statement always fails there (25001, checked on PostgreSQL 15: even after a COMMIT of the same query).
- NATIVE_SPLIT, native schema engine of Prisma >= 7.4 (prisma-engines #5767, #5799): the file is split with
  sqlparser 0.61 and each statement is sent alone, so it autocommits: a failure at k leaves 1..k-1 (less what an
  open BEGIN of the file rolls back). When sqlparser cannot parse the file (a DO block, DROP INDEX CONCURRENTLY,
  ALTER SEQUENCE ... INCREMENT BY ...), the engine falls back to the whole file: NATIVE_WHOLE's behaviour.
  native_splits() decides that with sqloxide 0.61.1, the Python binding of the same sqlparser version.
- JS, the wasm schema engine through @prisma/adapter-pg (Prisma 6.x with engine 'js'; 7.x through the wasm
  path the tests use): `script.split(';')`, each piece trimmed and sent alone in autocommit. A piece cut inside
  a dollar-quoted body, a string or a comment is not valid SQL, so the file always fails at that statement.

Assumption (the engine's source of the split was not readable here): the 7.4+ engine parses the whole script
with sqlparser's PostgreSqlDialect (Parser::parse_sql), splits on the statements it found when that succeeds and
sends the script whole when it fails (PR #5847 describes exactly that fallback). sqloxide.parse_sql(...,
dialect="postgres") is that same call. Its statements are mapped onto the collection's own (pglast) statements by
count; where the counts differ the mapping is unknown and every prefix is kept as possible (see per_statement).
"""

from __future__ import annotations

from typing import Iterable

NATIVE_WHOLE = "native<=7.3"
NATIVE_SPLIT = "native>=7.4"
JS = "js"
FAMILIES = (NATIVE_WHOLE, NATIVE_SPLIT, JS)
VERSIONS = {
    NATIVE_WHOLE: "Prisma 6.x to 7.3, native schema engine: the whole file in one implicit transaction",
    NATIVE_SPLIT: "Prisma >= 7.4, native schema engine: one statement at a time (the whole file when sqlparser "
                  "cannot parse it)",
    JS: "JS/wasm schema engine with @prisma/adapter-pg (6.x engine 'js', 7.x wasm path): split on ';'",
}

WHOLE = "whole"
PER_STATEMENT = "per_statement"
SEMICOLON = "split_on_semicolon"


def sqlparser_statements(sql: str) -> int | None:
    """How many statements sqlparser 0.61 finds in the file (PostgreSqlDialect), or None when it cannot parse it."""
    import sqloxide
    try:
        return len(sqloxide.parse_sql(sql=sql, dialect="postgres"))
    except ValueError:  # sqloxide's "Query parsing failed. sql parser error: ..."
        return None


def native_splits(sql: str) -> bool:
    """True when native Prisma >= 7.4 sends this file one statement at a time; False: the whole file at once."""
    return sqlparser_statements(sql) is not None


def execution(family: str, sql: str) -> str:
    """How the family sends this file: WHOLE, PER_STATEMENT or SEMICOLON."""
    if family == NATIVE_WHOLE:
        return WHOLE
    if family == NATIVE_SPLIT:
        return PER_STATEMENT if native_splits(sql) else WHOLE
    if family == JS:
        return SEMICOLON
    raise ValueError("unknown engine family %r" % family)


def committed_prefix(statements: list, k: int) -> int:
    """How many leading statements hold after statements 1..k ran one at a time and the connection then closed.

    An open BEGIN is rolled back with the connection: what holds ends before it (or at the last COMMIT).
    """
    held, open_block = 0, False
    for position, statement in enumerate(statements[:k], start=1):
        kind = statement.kind
        if kind == "begin":
            open_block = True
        elif kind in ("commit", "rollback"):
            open_block = False
        if not open_block:
            held = position
    return held


def _whole_held(statements: list, k: int) -> int:
    """One simple query failing at k: only the file's own COMMITs before k made anything last."""
    held = 0
    for position, statement in enumerate(statements[:k - 1], start=1):
        if statement.kind == "commit":
            held = position
    return held


def js_runnable(script: str, statements: list) -> int:
    """How many leading statements adapter-pg's split on ';' sends intact; the next one (if any) always fails.

    Each piece is parsed with PostgreSQL's own parser: a piece that does not parse, or that is not the statement
    the file holds at that place (pglast fingerprints differ), is where the JS engine fails every time.
    """
    from pglast import parser
    done = 0
    for piece in (p.strip() for p in script.split(";")):
        if not piece:
            continue
        try:
            found = parser.parse_sql_json(piece)
        except parser.ParseError:
            return done
        if '"stmt"' not in found:
            continue  # only a comment: the server answers an empty query, nothing ran
        if done >= len(statements):
            return done
        try:
            same = parser.fingerprint(piece) == parser.fingerprint(statements[done].sql)
        except parser.ParseError:
            same = False
        if not same:
            return done
        done += 1
    return done


class EngineRun:
    """One family's way through one file: which failures can happen and what each leaves."""

    def __init__(self, family: str, script: str, statements: list):
        self.family, self.script, self.statements = family, script, statements
        self.mode = execution(family, script)
        total = len(statements)
        self.aligned = True
        if self.mode == WHOLE:
            concurrent = [s.index for s in statements if s.concurrent]
            # The first CONCURRENTLY statement of a multi-statement query always fails (25001).
            self.reachable = concurrent[0] if (total > 1 and concurrent) else total
            self.can_succeed = not (total > 1 and concurrent)
        elif self.mode == PER_STATEMENT:
            self.aligned = sqlparser_statements(script) == total
            self.reachable, self.can_succeed = total, True
        else:
            runnable = js_runnable(script, statements)
            self.reachable = min(runnable + 1, total)
            self.can_succeed = runnable == total

    def held_after_failure(self, k: int) -> int | None:
        """Leading statements that hold when statement k (1-based) fails; None when this family never gets to k."""
        if k < 1 or k > self.reachable:
            return None
        if self.mode == WHOLE:
            return _whole_held(self.statements, k)
        return committed_prefix(self.statements, k - 1)

    def states(self) -> frozenset:
        """Every held count a failed deploy of this file can leave: nothing, each failure, all with the row failed."""
        held = {0}  # a failure at statement 1, or the process gone before it
        if self.mode == PER_STATEMENT and not self.aligned:
            # sqlparser's statements are not pglast's: which prefixes hold is unknown, so none is ruled out.
            held.update(committed_prefix(self.statements, k) for k in range(len(self.statements) + 1))
        else:
            held.update(self.held_after_failure(k) for k in range(1, self.reachable + 1))
        if self.can_succeed:
            held.add(len(self.statements))
        held.discard(None)
        return frozenset(held)


def runs(script: str, statements: list, families: Iterable = FAMILIES) -> dict:
    """EngineRun of every family for one file."""
    return {family: EngineRun(family, script, statements) for family in families}


# ---------------------------------------------------------------- what the native engine writes into a failed row


def _rust_lines(text: str) -> list:
    """Rust's str::lines(): split on \\n, a trailing \\r dropped, no empty last line after a final \\n."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def position_block(script: str, position: int) -> str:
    """The native engine's Position block for PostgreSQL's 1-based error position in the script it sent.

    As shared/reference/prisma-migrate.md (P3018) describes it: the line holding the position (counted in bytes,
    each line plus its \\n), after up to 5 numbered lines before it, numbered `line - (5 - slot)`, so a "0" with
    an empty line appears near the top of the file; numbers in bold, the failing line in bold red.
    """
    previous = [""] * 5
    seen = 0
    for number, line in enumerate(_rust_lines(script), start=1):
        seen += len(line.encode("utf-8")) + 1
        if position <= seen:
            shown = ["\x1b[1m%3d\x1b[0m%s%s" % (number - (5 - slot), " " if text else "", text)
                     for slot, text in enumerate(previous) if number - (5 - slot) >= 0]
            return "\n\nPosition:\n%s\n\x1b[1m%3d\x1b[1;31m %s\x1b[0m" % ("\n".join(shown), number, line)
        previous = previous[1:] + [line]
    return ""


def p3018_log(name: str, sqlstate: str | None, message: str, script: str | None = None,
              position: int | None = None) -> str:
    """A failed row's logs as the native engine writes it: P3018, the error, its Position block, Debug, span trace."""
    block = position_block(script, position) if (script is not None and position) else ""
    debug = ('DbError { severity: "ERROR", parsed_severity: Some(Error), code: SqlState(E%s), message: "%s", '
             'detail: None, hint: None, position: %s, where_: None, schema: None, table: None, column: None, '
             'datatype: None, constraint: None, file: Some("parse_relation.c"), line: Some(1392), '
             'routine: Some("errorMissingColumn") }' % (
                 sqlstate, message.replace('"', '\\"'), "Some(Original(%d))" % position if position else "None"))
    return ("A migration failed to apply. New migrations cannot be applied before the error is recovered from. "
            "Read more about how to resolve migration issues in a production database: "
            "https://pris.ly/d/migrate-resolve\n\nMigration name: %s\n\nDatabase error code: %s\n\n"
            "Database error:\nERROR: %s%s\n\n%s\n\n"
            "   0: sql_schema_connector::apply_migration::apply_script\n"
            "           with migration_name=\"%s\"\n"
            "             at schema-engine/connectors/sql-schema-connector/src/apply_migration.rs:113\n"
            "   1: schema_core::commands::apply_migrations::Applying migration\n"
            "           with migration_name=\"%s\"\n"
            "             at schema-engine/core/src/commands/apply_migrations.rs:91" % (
                name, sqlstate or "none", message, block, debug, name, name))
