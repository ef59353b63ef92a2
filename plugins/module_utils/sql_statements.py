# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Split a migration.sql into statements with PostgreSQL's own parser (pglast / libpg_query).

Each statement gets its 1-based index, a kind (create_table, add_column, do_block, update...),
the object it touches and a short excerpt. Dollar-quoted bodies, comments, quoted identifiers
and string literals holding ';' are handled by the real grammar, not by splitting on ';'.

The parse tree is read as JSON (pglast.parser.parse_sql_json): building pglast's Python node
objects costs about 25 times more, which matters for 10,000-statement scripts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

try:
    from pglast import parser as _pg_parser
    HAS_PGLAST = True
    PGLAST_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by the import sanity test
    _pg_parser = None
    HAS_PGLAST = False
    PGLAST_IMPORT_ERROR = exc

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

EXCERPT_LENGTH = 100

# Statement kinds whose effect lives in rows or in code, not in the catalogs.
DATA_KINDS = frozenset(("insert", "update", "delete", "select", "copy", "truncate", "merge", "call"))
TRANSACTION_KINDS = frozenset(("begin", "commit", "rollback", "savepoint", "release", "prepare_transaction"))


class SqlParseError(PrismaOpsError):
    """migration.sql is not valid PostgreSQL (as libpg_query parses it)."""


def require_pglast() -> None:
    if not HAS_PGLAST:
        import sys
        raise PrismaOpsError(
            "evidence needs pglast (PostgreSQL's parser for Python) on the Python that runs this module (%s): "
            "`pip install pglast` in that interpreter's virtualenv, or point ansible_python_interpreter at one that "
            "has it" % (sys.executable or "python"), missing_library="pglast")


@dataclass
class Statement:
    index: int
    kind: str
    target: str | None
    excerpt: str
    sql: str = field(repr=False)
    node_type: str = ""
    node: dict = field(default_factory=dict, repr=False)

    @property
    def is_data(self) -> bool:
        return self.kind in DATA_KINDS

    @property
    def is_transaction_control(self) -> bool:
        return self.kind in TRANSACTION_KINDS

    @property
    def concurrent(self) -> bool:
        return bool(self.node.get("concurrent")) or (self.node_type == "ReindexStmt" and "concurrently" in self.sql.lower())

    def as_dict(self) -> dict:
        return {"index": self.index, "kind": self.kind, "object": self.target, "excerpt": self.excerpt}


@dataclass
class ParsedScript:
    statements: list

    @property
    def has_transaction_control(self) -> bool:
        """The file has its own BEGIN/COMMIT/ROLLBACK, so the native engine's one implicit transaction splits."""
        return any(s.is_transaction_control for s in self.statements)

    @property
    def has_concurrently(self) -> bool:
        """CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block."""
        return any(s.concurrent for s in self.statements)


# ---------------------------------------------------------------- small helpers over the JSON tree

def strings(items) -> list:
    """["public", "User"] from a parse-tree list of String nodes."""
    out = []
    for item in items or ():
        if "String" in item:
            out.append(item["String"].get("sval", ""))
        elif "sval" in item:
            out.append(item["sval"])
    return out


def qualified(schema: str | None, name: str | None) -> str | None:
    if name is None:
        return None
    return "%s.%s" % (schema, name) if schema else name


def range_name(rangevar: dict | None) -> str | None:
    if not rangevar:
        return None
    return qualified(rangevar.get("schemaname"), rangevar.get("relname"))


def _excerpt(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) > EXCERPT_LENGTH:
        return one_line[:EXCERPT_LENGTH - 3] + "..."
    return one_line


def _strip_leading_comments(text: str) -> str:
    """The statement without the comments and blank lines the parser counts as its start."""
    rest = text.lstrip()
    while True:
        if rest.startswith("--"):
            newline = rest.find("\n")
            rest = "" if newline < 0 else rest[newline + 1:].lstrip()
        elif rest.startswith("/*"):
            depth, pos = 0, 0
            while pos < len(rest):  # block comments nest in PostgreSQL
                if rest.startswith("/*", pos):
                    depth += 1
                    pos += 2
                elif rest.startswith("*/", pos):
                    depth -= 1
                    pos += 2
                    if depth == 0:
                        break
                else:
                    pos += 1
            rest = rest[pos:].lstrip()
        else:
            return rest


_ALTER_TABLE_KINDS = {
    "AT_AddColumn": "add_column", "AT_DropColumn": "drop_column", "AT_AlterColumnType": "alter_column_type",
    "AT_SetNotNull": "set_not_null", "AT_DropNotNull": "drop_not_null", "AT_AddConstraint": "add_constraint",
    "AT_DropConstraint": "drop_constraint", "AT_ValidateConstraint": "validate_constraint",
}
_OBJECT_WORDS = {
    "OBJECT_TABLE": "table", "OBJECT_INDEX": "index", "OBJECT_TYPE": "type", "OBJECT_VIEW": "view",
    "OBJECT_MATVIEW": "materialized_view", "OBJECT_SEQUENCE": "sequence", "OBJECT_EXTENSION": "extension",
    "OBJECT_FUNCTION": "function", "OBJECT_PROCEDURE": "procedure", "OBJECT_TRIGGER": "trigger",
    "OBJECT_SCHEMA": "schema", "OBJECT_COLUMN": "column", "OBJECT_TABCONSTRAINT": "constraint",
    "OBJECT_DOMAIN": "domain",
}
_TRANSACTION_KINDS = {
    "TRANS_STMT_BEGIN": "begin", "TRANS_STMT_START": "begin", "TRANS_STMT_COMMIT": "commit",
    "TRANS_STMT_ROLLBACK": "rollback", "TRANS_STMT_SAVEPOINT": "savepoint", "TRANS_STMT_RELEASE": "release",
    "TRANS_STMT_ROLLBACK_TO": "rollback", "TRANS_STMT_PREPARE": "prepare_transaction",
    "TRANS_STMT_COMMIT_PREPARED": "commit", "TRANS_STMT_ROLLBACK_PREPARED": "rollback",
}
_SIMPLE_KINDS = {
    "InsertStmt": "insert", "UpdateStmt": "update", "DeleteStmt": "delete", "SelectStmt": "select",
    "CopyStmt": "copy", "TruncateStmt": "truncate", "MergeStmt": "merge", "CallStmt": "call", "DoStmt": "do_block",
    "VariableSetStmt": "set", "VariableShowStmt": "show", "CommentStmt": "comment", "GrantStmt": "grant", "GrantRoleStmt": "grant",
    "AlterSeqStmt": "alter_sequence", "CreateSchemaStmt": "create_schema", "CreateExtensionStmt": "create_extension",
    "CreateSeqStmt": "create_sequence", "ViewStmt": "create_view", "CreateFunctionStmt": "create_function",
    "CreateTrigStmt": "create_trigger", "CreateEnumStmt": "create_enum", "CreateTableAsStmt": "create_table_as",
    "CompositeTypeStmt": "create_type", "CreateDomainStmt": "create_domain", "ReindexStmt": "reindex",
    "VacuumStmt": "vacuum", "AlterOwnerStmt": "alter_owner", "CreatePolicyStmt": "create_policy",
}


def classify(node_type: str, node: dict) -> tuple:
    """(kind, target) of one parsed statement."""
    kind = _SIMPLE_KINDS.get(node_type, node_type.replace("Stmt", "").lower() or "other")
    target = None
    if node_type == "CreateStmt":
        kind, target = "create_table", range_name(node.get("relation"))
    elif node_type == "AlterTableStmt":
        table = range_name(node.get("relation"))
        cmds = [c.get("AlterTableCmd", {}) for c in node.get("cmds", ())]
        target = table
        kinds = set()
        for cmd in cmds:
            subtype = cmd.get("subtype", "")
            if subtype == "AT_ColumnDefault":
                kinds.add("set_default" if cmd.get("def") else "drop_default")
            else:
                kinds.add(_ALTER_TABLE_KINDS.get(subtype, "alter_table"))
        if node.get("objtype") == "OBJECT_INDEX":
            kind = "alter_index"
        elif len(kinds) == 1:
            kind = kinds.pop()
            if len(cmds) == 1 and cmds[0].get("name"):
                target = "%s.%s" % (table, cmds[0]["name"])
            elif len(cmds) == 1 and kind == "add_constraint":
                conname = cmds[0].get("def", {}).get("Constraint", {}).get("conname")
                target = "%s.%s" % (table, conname) if conname else table
            elif len(cmds) == 1 and kind == "add_column":
                target = "%s.%s" % (table, cmds[0].get("def", {}).get("ColumnDef", {}).get("colname"))
        else:
            kind = "alter_table"
    elif node_type == "IndexStmt":
        kind = "create_unique_index" if node.get("unique") else "create_index"
        target = qualified((node.get("relation") or {}).get("schemaname"), node.get("idxname"))
    elif node_type == "DropStmt":
        word = _OBJECT_WORDS.get(node.get("removeType", ""), "object")
        kind = "drop_" + word
        names = []
        for obj in node.get("objects", ()):
            if "List" in obj:
                names.append(".".join(strings(obj["List"].get("items"))))
            elif "String" in obj:
                names.append(obj["String"].get("sval", ""))
            elif "TypeName" in obj:
                names.append(".".join(strings(obj["TypeName"].get("names"))))
            elif "ObjectWithArgs" in obj:
                names.append(".".join(strings(obj["ObjectWithArgs"].get("objname"))))
        target = ", ".join(names) or None
    elif node_type == "RenameStmt":
        word = _OBJECT_WORDS.get(node.get("renameType", ""), "object")
        kind = "rename_" + word
        base = range_name(node.get("relation"))
        if base is None and node.get("object"):
            obj = node["object"]
            base = ".".join(strings(obj.get("List", {}).get("items"))) if "List" in obj else obj.get("String", {}).get("sval")
        if node.get("subname"):
            target = "%s.%s -> %s" % (base, node["subname"], node.get("newname"))
        else:
            target = "%s -> %s" % (base, node.get("newname"))
    elif node_type == "AlterEnumStmt":
        type_name = ".".join(strings(node.get("typeName")))
        if node.get("oldVal"):
            kind, target = "rename_enum_value", "%s.%s -> %s" % (type_name, node["oldVal"], node.get("newVal"))
        else:
            kind, target = "add_enum_value", "%s.%s" % (type_name, node.get("newVal"))
    elif node_type == "CreateEnumStmt":
        target = ".".join(strings(node.get("typeName")))
    elif node_type == "CreateExtensionStmt":
        target = node.get("extname")
    elif node_type == "CreateSeqStmt":
        target = range_name(node.get("sequence"))
    elif node_type == "AlterSeqStmt":
        target = range_name(node.get("sequence"))
    elif node_type == "ViewStmt":
        target = range_name(node.get("view"))
    elif node_type == "CreateFunctionStmt":
        kind = "create_procedure" if node.get("is_procedure") else "create_function"
        target = ".".join(strings(node.get("funcname")))
    elif node_type == "CreateTrigStmt":
        target = "%s.%s" % (range_name(node.get("relation")), node.get("trigname"))
    elif node_type == "CreateSchemaStmt":
        target = node.get("schemaname")
    elif node_type == "TransactionStmt":
        kind = _TRANSACTION_KINDS.get(node.get("kind", ""), "transaction")
    elif node_type in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
        target = range_name(node.get("relation"))
    elif node_type == "CopyStmt":
        target = range_name(node.get("relation"))
    elif node_type == "VariableSetStmt":
        target = node.get("name")
    return kind, target


def _line_of(script: str, position: int) -> int:
    return script.count("\n", 0, position) + 1


def _refuse_unparseable_text(script: str) -> None:
    """Text the parser would misread is a parse error, never a shorter script.

    libpg_query takes a C string: a NUL byte ends it there, and every statement after the NUL would
    silently vanish (a completion would run a prefix and call the migration applied). Lone surrogates
    are what undecodable bytes become under errors="surrogateescape": the file is not UTF-8.
    """
    nul = script.find("\x00")
    if nul >= 0:
        raise SqlParseError("migration.sql is not valid PostgreSQL at line %d: it holds a NUL byte, which "
                            "PostgreSQL never accepts in a query (the parser would stop there and miss every "
                            "statement after it)" % _line_of(script, nul))
    try:
        script.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SqlParseError("migration.sql is not valid UTF-8 at line %d (an undecodable byte or a lone surrogate "
                            "at character %d)" % (_line_of(script, exc.start), exc.start + 1))


def parse_script(script: str) -> ParsedScript:
    """Parse a whole migration.sql; raise SqlParseError (with the parser's message) when it is not valid SQL."""
    require_pglast()
    _refuse_unparseable_text(script)
    try:
        tree = json.loads(_pg_parser.parse_sql_json(script))
    except _pg_parser.ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 else None
        where = ""
        if isinstance(location, int) and location > 0:
            # libpg_query reports a character position (1-based) for syntax errors.
            line = script[:location].count("\n") + 1
            where = " at line %d" % line
        raise SqlParseError("migration.sql is not valid PostgreSQL%s: %s" % (where, exc.args[0] if exc.args else exc))
    raw = script.encode("utf-8")
    statements = []
    for position, entry in enumerate(tree.get("stmts", ()), start=1):
        stmt = entry.get("stmt") or {}
        node_type, node = next(iter(stmt.items())) if stmt else ("EmptyStmt", {})
        # Locations are byte offsets into the UTF-8 text; stmt_location is omitted when 0, stmt_len when "to the end".
        start = entry.get("stmt_location", 0)
        length = entry.get("stmt_len", 0)
        piece = raw[start:start + length] if length else raw[start:]
        text = _strip_leading_comments(piece.decode("utf-8", errors="replace")).rstrip().rstrip(";").rstrip()
        kind, target = classify(node_type, node)
        statements.append(Statement(index=position, kind=kind, target=target, excerpt=_excerpt(text), sql=text,
                                    node_type=node_type, node=node))
    return ParsedScript(statements=statements)
