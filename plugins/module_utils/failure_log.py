# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which statement of a failed migration the failed row's log points at: a HINT for the operator, nothing more.

A failed `_prisma_migrations` row's `logs` is what the engine wrote when the script failed
(shared/reference/prisma-migrate.md, sections 2 and 3):

- native schema engine: the P3018 text, with `Database error code: <SQLSTATE or none>`, `Database error:` and the
  database's message, often a `Position:` block (up to 5 numbered lines before the failing one and the failing line,
  in ANSI bold and red), the Debug form of the error, then a span trace;
- JS engine / driver adapters: `external connector error\\n` then the adapter's message and a span trace, with no
  SQLSTATE and no position. adapter-pg maps some errors to its own words, with names unquoted (seen with the real
  6.19.3 and 7.10.1 CLIs: `No such table: X`, `Error accessing result set, column not found: x`, `Foreign key
  constraint failed: X_fkey`, `Unique constraint failed: (id)`, `Null constraint failed: `); the others come as
  `Error querying the database: ERROR: <PostgreSQL's message>`;
- NULL when the process died while the script ran, and anything at all when someone edited the row.

log_hint() reads at most MAX_LOG_CHARS of it and returns {sqlstate, message, statement_index, how}: the statement
(1-based, as sql_statements.parse_script numbers them) the log shows, or None, and how that was read. It names a
statement only when exactly one fits: the Position block's failing line (with its numbered context) found at one
place of the file, inside one statement; or an error that names an object that exactly one statement creates (or,
for other errors, that exactly one statement mentions). Several fits, none, or the two ways disagreeing give None,
never a guess.

It is a hint and stays one: no verdict, recommendation or action reads it. The evidence (statement probes, the
replay) decides; a log can be stale, truncated, edited, or written by an engine that numbers lines differently.
It is pure (no I/O), bounded, and never raises.
"""

from __future__ import annotations

import re

MAX_LOG_CHARS = 65536          # a real P3018 log is a few KiB; the Position block is near its start
MAX_SCRIPT_CHARS = 8 * 1024 * 1024
MAX_TEXT = 300                 # message and how, once cleaned
MAX_NAMES = 4                  # quoted names read from one error line
POSITION_LINES = 6             # Prisma prints 5 lines before the failing one, and that one

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_RED = "\x1b[1;31m"
_NUMBERED = re.compile(r"^ *([0-9]{1,9})(?: (.*))?$")
_CODE_LINE = re.compile(r"^Database error code: *([0-9A-Za-z]{5}|none) *$")
_DEBUG_CODE = re.compile(r"code: SqlState\(E?([0-9A-Z]{5})\)")
_SEVERITY = re.compile(r"^(?:ERROR|FATAL|PANIC|WARNING): *")
_JS_MESSAGE = re.compile(r"^Error querying the database: *(.*)$")
_JS_HEADER = "external connector error"
_SPAN_LINE = re.compile(r"^ *[0-9]+: ")
# adapter-pg's own words for some errors: the object they name, unquoted.
_ADAPTER_NAMES = (re.compile(r"^No such table: *([^\s:]{1,200})$"),
                  re.compile(r"column not found: *([^\s:]{1,200})$"),
                  re.compile(r"^Foreign key constraint failed: *([^\s:]{1,200})$"))
_DB_ERROR = re.compile(r"^db error: *(.*)$")
_QUOTED_NAME = re.compile(r'"([^"]{1,200})"')
_TOKENS = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/|\"((?:[^\"]|\"\")*)\"|([A-Za-z_][A-Za-z0-9_$]*)", re.S)

_RELATION_CREATORS = frozenset(("create_table", "create_index", "create_unique_index", "create_view",
                                "create_sequence", "create_table_as", "add_constraint"))
_TYPE_CREATORS = frozenset(("create_enum", "create_type", "create_domain"))
_ALREADY_EXISTS = (
    (re.compile(r'^constraint "([^"]{1,200})" for relation "([^"]{1,200})" already exists'), "constraint"),
    (re.compile(r'^column "([^"]{1,200})" of relation "([^"]{1,200})" already exists'), "column"),
    (re.compile(r'^relation "([^"]{1,200})" already exists'), "relation"),
    (re.compile(r'^type "([^"]{1,200})" already exists'), "type"),
)


def _empty(how: str, sqlstate=None, message=None) -> dict:
    return {"sqlstate": sqlstate, "message": message, "statement_index": None, "how": _clip(how)}


def _clip(text, limit: int = MAX_TEXT):
    if text is None:
        return None
    text = _CONTROL.sub("", _ANSI.sub("", text)).strip()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _as_text(logs):
    """The first MAX_LOG_CHARS of the log as text, or None when it is not text at all."""
    if isinstance(logs, (bytes, bytearray, memoryview)):
        return bytes(logs[:MAX_LOG_CHARS * 4]).decode("utf-8", errors="replace")[:MAX_LOG_CHARS]
    if isinstance(logs, str):
        return logs[:MAX_LOG_CHARS]
    return None


# ---------------------------------------------------------------- what the log says


def _sqlstate(plain_lines: list):
    codes = {m.group(1).upper() for m in (_CODE_LINE.match(line.strip()) for line in plain_lines) if m}
    codes.discard("NONE")
    if len(codes) == 1:
        return codes.pop()
    if codes:
        return None  # two different codes: the log was edited or holds another log; say nothing
    debug = {m.group(1) for m in (_DEBUG_CODE.search(line) for line in plain_lines) if m}
    return debug.pop() if len(debug) == 1 else None


def _message(plain_lines: list):
    for number, line in enumerate(plain_lines):
        if line.strip() == "Database error:":
            for following in plain_lines[number + 1:number + 4]:
                if following.strip():
                    return _SEVERITY.sub("", following.strip())
            return None
    for number, line in enumerate(plain_lines):
        if line.strip() == _JS_HEADER:
            for following in plain_lines[number + 1:number + 4]:
                if _SPAN_LINE.match(following):
                    return None
                if following.strip():
                    found = _JS_MESSAGE.match(following.strip())
                    return _SEVERITY.sub("", found.group(1).strip() if found else following.strip())
            return None
    for line in plain_lines:
        for pattern in (_JS_MESSAGE, _DB_ERROR):
            found = pattern.match(line.strip())
            if found and found.group(1).strip():
                return _SEVERITY.sub("", found.group(1).strip())
    return None


def _position_block(raw_lines: list, plain_lines: list):
    """((number, text) of the context lines, (number, text) of the failing line)), or a str saying why none."""
    starts = [i for i, line in enumerate(plain_lines) if line.strip() == "Position:"]
    if not starts:
        return None
    if len(starts) > 1:
        return "the log holds %d Position blocks" % len(starts)
    numbered, red = [], None
    for i in range(starts[0] + 1, len(plain_lines)):
        found = _NUMBERED.match(plain_lines[i])
        if not found:
            break
        if len(numbered) == POSITION_LINES:
            return "the Position block has more numbered lines than Prisma prints"
        numbered.append((int(found.group(1)), found.group(2) or ""))
        if _RED in raw_lines[i]:
            red = len(numbered) - 1
    if not numbered:
        return "the Position block has no numbered line"
    numbers = [n for n, _text in numbered]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return "the Position block's line numbers do not follow each other"
    failing = numbered[-1] if red is None else numbered[red]
    if red is not None and red != len(numbered) - 1:
        return "the Position block's red line is not its last"
    return numbered[:-1], failing


# ---------------------------------------------------------------- where that is in migration.sql


def _script_lines(script: str) -> list:
    # As Rust's str::lines(), which the engine numbers: split on \n, a trailing \r dropped.
    return [line[:-1] if line.endswith("\r") else line for line in script.split("\n")]


def _same_line(file_line: str, shown: str) -> bool:
    # An engine that sends statements alone may send the last line of one without its ';'.
    return file_line.rstrip().rstrip(";").rstrip() == shown.rstrip().rstrip(";").rstrip()


def _fits(lines: list, at: int, context: list, failing: tuple) -> bool:
    """The failing line is line `at` (1-based) and each numbered context line sits where its number says."""
    if not 1 <= at <= len(lines) or not _same_line(lines[at - 1], failing[1]):
        return False
    for number, text in context:
        if number <= 0:
            continue  # Prisma's placeholder before line 1
        where = at - (failing[0] - number)
        if not 1 <= where <= len(lines) or not _same_line(lines[where - 1], text):
            return False
    return True


def _statement_spans(script: str, statements: list):
    """(first line, last line) of each statement in the file, or None when one cannot be found in order."""
    spans, cursor, line = [], 0, 1
    for statement in statements:
        text = getattr(statement, "sql", None)
        if not isinstance(text, str) or not text:
            return None
        start = script.find(text, cursor)
        if start < 0:
            return None
        first = line + script.count("\n", cursor, start)
        last = first + text.count("\n")
        spans.append((first, last))
        cursor, line = start + len(text), last
    return spans


def _statement_at(line: int, spans: list):
    """The 1-based index of the one statement spanning that line, or a str saying why none."""
    holding = [index for index, (first, last) in enumerate(spans, start=1) if first <= line <= last]
    if len(holding) == 1:
        return holding[0]
    if not holding:
        return "line %d is in no statement (a comment or a blank line)" % line
    return "line %d holds statements %s" % (line, ", ".join(str(i) for i in holding))


def _from_position(block, lines: list, spans):
    """(statement index or None, how)."""
    context, failing = block
    excerpt = _clip(failing[1], 80)
    if not failing[1].strip():
        return None, "the Position block's failing line is blank"
    if _fits(lines, failing[0], context, failing):
        line, how = failing[0], "the Position block shows line %d (%s)" % (failing[0], excerpt)
    else:
        places = [at for at in range(1, len(lines) + 1) if _fits(lines, at, context, failing)]
        if not places:
            return None, "the Position block's line %d (%s) is nowhere in migration.sql" % (failing[0], excerpt)
        if len(places) > 1:
            return None, "the Position block's line %s (%s) fits lines %s of migration.sql: not a guess" % (
                failing[0], excerpt, ", ".join(str(p) for p in places[:5]))
        line = places[0]
        how = "the Position block's line %d (%s) is line %d of migration.sql, found by its text" % (
            failing[0], excerpt, line)
    if spans is None:
        return None, how + ", but the statements could not be placed in the file"
    found = _statement_at(line, spans)
    if isinstance(found, str):
        return None, how + ", but " + found
    return found, how + ", inside statement %d" % found


def _names_of(statement) -> tuple:
    """(quoted identifiers, bare identifiers lowercased) a statement mentions outside strings and comments."""
    quoted, bare = set(), set()
    for match in _TOKENS.finditer(getattr(statement, "sql", "") or ""):
        if match.group(1) is not None:
            quoted.add(match.group(1).replace('""', '"'))
        elif match.group(2) is not None:
            bare.add(match.group(2).lower())
    return quoted, bare


def _last(target) -> str:
    return (target or "").rsplit(".", 1)[-1]


def _renamed_to(statement) -> str:
    target = statement.target or ""
    return target.rsplit(" -> ", 1)[1] if statement.kind.startswith("rename_") and " -> " in target else ""


def _creators(statements: list, what: str, names: tuple) -> list:
    found = []
    for index, statement in enumerate(statements, start=1):
        kind, target = getattr(statement, "kind", ""), getattr(statement, "target", None)
        if what == "relation":
            hit = (kind in _RELATION_CREATORS and _last(target) == names[0]) or _renamed_to(statement) == names[0]
        elif what == "type":
            hit = (kind in _TYPE_CREATORS and _last(target) == names[0]) or (
                kind == "rename_type" and _renamed_to(statement) == names[0])
        elif what == "constraint":
            hit = (kind == "add_constraint" and _last(target) == names[0]) or (
                kind == "rename_constraint" and _renamed_to(statement) == names[0])
        else:
            hit = (kind == "add_column" and _last(target) == names[0]) or (
                kind == "rename_column" and _renamed_to(statement) == names[0])
        if hit:
            found.append(index)
    return found


def _from_message(message: str, statements: list):
    """(statement index or None, how) from the objects the error names."""
    first = message.splitlines()[0] if message else ""
    for pattern, what in _ALREADY_EXISTS:
        found = pattern.match(first)
        if found:
            names = found.groups()
            creators = _creators(statements, what, names)
            if len(creators) == 1:
                return creators[0], 'the error names %s "%s", and only statement %d creates it' % (
                    what, names[0], creators[0])
            if len(creators) > 1:
                return None, 'the error names %s "%s", which statements %s create: not a guess' % (
                    what, names[0], ", ".join(str(i) for i in creators[:5]))
            break  # nothing creates it: what mentions it may still tell (an index made by a table's constraint)
    names = []
    for name in _QUOTED_NAME.findall(first) or [m.group(1) for m in (p.search(first) for p in _ADAPTER_NAMES) if m]:
        if name not in names:
            names.append(name)
    names = names[:MAX_NAMES]
    if not names:
        return None, "the error names nothing that migration.sql holds"
    said = " and ".join('"%s"' % n for n in names)
    holding = []
    for index, statement in enumerate(statements, start=1):
        quoted, bare = _names_of(statement)
        if all(name in quoted or (name == name.lower() and name in bare) for name in names):
            holding.append(index)
    if len(holding) == 1:
        return holding[0], "the error names %s, and only statement %d mentions %s" % (
            said, holding[0], "it" if len(names) == 1 else "them")
    if not holding:
        return None, "the error names %s, which no statement mentions" % said
    return None, "the error names %s, which statements %s mention: not a guess" % (
        said, ", ".join(str(i) for i in holding[:5]))


def _statements_of(script, statements):
    if statements is not None:
        return list(statements)
    if not isinstance(script, str):
        return None
    try:
        from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import parse_script
        return parse_script(script).statements
    except Exception:  # pylint: disable=broad-except  # a file pglast refuses (or no pglast) only loses the hint
        return None


def _hint(logs, script, statements) -> dict:
    if logs is None:
        return _empty("no log: the row's logs is NULL (the engine died before writing one, or the row was made "
                      "by hand)")
    text = _as_text(logs)
    if text is None:
        return _empty("the log is not text")
    if not _CONTROL.sub("", _ANSI.sub("", text)).strip():
        return _empty("the log is empty")
    raw_lines = text.split("\n")
    plain_lines = [_CONTROL.sub("", _ANSI.sub("", line)) for line in raw_lines]
    sqlstate, message = _sqlstate(plain_lines), _clip(_message(plain_lines))
    if sqlstate is None and message is None:
        return _empty("the log holds no database error Prisma writes")
    block = _position_block(raw_lines, plain_lines)
    if not isinstance(script, str) or len(script) > MAX_SCRIPT_CHARS:
        return _empty("no migration.sql to match the log against" if not isinstance(script, str) else
                      "migration.sql is too large to match the log against", sqlstate, message)
    statements = _statements_of(script, statements)
    if not statements:
        return _empty("migration.sql has no statement the log could point at", sqlstate, message)
    spans = _statement_spans(script, statements)
    by_position = by_message = position_how = message_how = None
    if isinstance(block, str):
        position_how = block
    elif block is not None:
        by_position, position_how = _from_position(block, _script_lines(script), spans)
    if message:
        by_message, message_how = _from_message(message, statements)
    if by_position is not None and by_message is not None and by_position != by_message:
        return _empty("the Position block points at statement %d and the error at statement %d: they disagree"
                      % (by_position, by_message), sqlstate, message)
    index = by_position if by_position is not None else by_message
    if by_position is not None:
        # The Position block named it; the error, when it names the same statement, only confirms.
        hows = [position_how] + ([message_how] if by_message == index else [])
    else:
        hows = [h for h in (message_how, position_how) if h] if by_message is not None else [
            h for h in (position_how, message_how) if h]
    return {"sqlstate": sqlstate, "message": message, "statement_index": index,
            "how": _clip("; ".join(hows) or "the log does not say which statement failed")}


def log_hint(logs, script=None, statements=None) -> dict:
    """{sqlstate, message, statement_index, how} from a failed row's logs and its migration.sql. Never raises.

    statements: sql_statements.parse_script(script).statements when the caller has them (parsed here otherwise).
    A hint for the operator: it must never feed a verdict or an action.
    """
    try:
        return _hint(logs, script, statements)
    except Exception as exc:  # pylint: disable=broad-except  # a hint must never fail the module that reads it
        return _empty("the log could not be read (%s)" % type(exc).__name__)
