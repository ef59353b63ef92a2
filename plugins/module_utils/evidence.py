# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence for a failed migration: what did its migration.sql really do to the live schema?

Two independent methods (see DESIGN.md, "Evidence"):
- statement probes: every statement of migration.sql becomes expected effects (a table, a column
  and its type / nullability / default, an index, a constraint, an enum label, a drop...), judged
  against the state the WHOLE migration would leave (a column added then dropped is expected
  absent), and checked in one snapshot of the live catalogs;
- shadow replay: in a scratch database, replay migrations 1..N-1 ("before") and N ("after") the
  way the native engine does (one simple-query call per script), and compare the live schema
  with both.
When both run they must agree, or the verdict is unknown. Probes only read; the replay writes
only in the temporary database it creates (or in an empty shadow_url database it resets).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace

from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import connect, parse_database_url, scrub
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import (
    compare_snapshots, flatten, is_empty, quote_ident, take_snapshot,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import (
    SqlParseError, parse_script, qualified, require_pglast, strings,
)

VERDICTS = ("applied", "not_applied", "partial", "unknown")
ACTIONS = {"applied": "resolve_applied", "not_applied": "resolve_rolled_back", "partial": "stop", "unknown": "stop"}
DIFFERENCE_LIMIT = 25
SHADOW_PREFIX = "prisma_ops_shadow_"
# SQLSTATEs of "already exists": an object made by hand may explain a present statement.
DUPLICATE_SQLSTATES = frozenset(("42P07", "42710", "42701", "42P06", "42723", "42P16"))
# Statement kinds with no lasting effect on the schema.
NEUTRAL_KINDS = frozenset(("begin", "commit", "rollback", "savepoint", "release", "set", "validate_constraint"))

# ---------------------------------------------------------------- types and defaults as the catalogs print them

_BUILTIN_TYPES = {
    "int4": "integer", "integer": "integer", "int": "integer", "serial": "integer", "serial4": "integer",
    "int8": "bigint", "bigint": "bigint", "bigserial": "bigint", "serial8": "bigint",
    "int2": "smallint", "smallint": "smallint", "smallserial": "smallint", "serial2": "smallint",
    "text": "text", "bool": "boolean", "boolean": "boolean", "float8": "double precision", "float4": "real",
    "numeric": "numeric", "decimal": "numeric", "varchar": "character varying", "bpchar": "character",
    "timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone", "date": "date",
    "time": "time without time zone", "timetz": "time with time zone", "interval": "interval", "jsonb": "jsonb",
    "json": "json", "uuid": "uuid", "bytea": "bytea", "inet": "inet", "cidr": "cidr", "macaddr": "macaddr",
    "xml": "xml", "money": "money", "tsvector": "tsvector", "oid": "oid", "bit": "bit", "varbit": "bit varying",
}
_SERIALS = frozenset(("serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"))


def type_text(type_node: dict, schema: str) -> tuple:
    """(format_type() text under search_path=pg_catalog, confident) for a parse-tree TypeName."""
    names = strings(type_node.get("names"))
    if names and names[0] == "pg_catalog":
        names = names[1:]
    mods = []
    for mod in type_node.get("typmods") or ():
        value = mod.get("A_Const", {}).get("ival", {})
        if not isinstance(value, dict):
            return None, False
        mods.append(value.get("ival", 0))
    arrays = "[]" * len(type_node.get("arrayBounds") or ())
    if len(names) == 1 and names[0] in _BUILTIN_TYPES:
        base = _BUILTIN_TYPES[names[0]]
        if names[0] == "bpchar" and not mods:
            return None, False  # CHAR alone means character(1): not worth the guess
        if base.startswith(("timestamp", "time ")) and mods:
            head, _sep, tail = base.partition(" ")
            return "%s(%d) %s%s" % (head, mods[0], tail, arrays), True
        if base == "numeric" and len(mods) == 1:
            mods.append(0)
        if mods:
            return "%s(%s)%s" % (base, ",".join(str(m) for m in mods), arrays), True
        return base + arrays, True
    if mods:
        return None, False
    if len(names) == 1:
        names = [schema] + names
    return ".".join(quote_ident(n) for n in names) + arrays, True


def default_text(expr: dict | None) -> str | None:
    """A loose, comparable form of a simple default expression; None when it is not simple."""
    if not expr:
        return None
    if "TypeCast" in expr:
        return default_text(expr["TypeCast"].get("arg"))
    if "A_Const" in expr:
        const = expr["A_Const"]
        if const.get("isnull"):
            return "null"
        for key in ("sval", "ival", "fval", "boolval"):
            if key in const:
                value = const[key]
                inner = value.get(key) if isinstance(value, dict) else value
                if key == "boolval":
                    return "true" if inner else "false"
                if key == "ival" and inner is None:
                    return "0"
                return str(inner if inner is not None else "")
    if "SQLValueFunction" in expr:
        return expr["SQLValueFunction"].get("op", "").replace("SVFOP_", "").lower()
    if "FuncCall" in expr:
        call = expr["FuncCall"]
        if call.get("args"):
            return None
        return strings(call.get("funcname"))[-1].lower() + "()"
    if "A_ArrayExpr" in expr and not expr["A_ArrayExpr"].get("elements"):
        return "array[]"
    return None


_CAST = re.compile(r"::[A-Za-z_\"][\w\s\".]*(\(\d+(,\d+)?\))?(\[\])*$")


def normalize_catalog_default(text: str | None) -> str | None:
    if text is None:
        return None
    value = text.strip()
    while True:
        stripped = _CAST.sub("", value)
        if stripped == value:
            break
        value = stripped.strip()
    if value.startswith("(") and value.endswith(")"):
        value = value[1:-1]
    if len(value) >= 2 and value[0] == "'" and value[-1] == "'":
        return value[1:-1].replace("''", "'")
    value = re.sub(r"^[A-Za-z_][\w]*\.(?=[A-Za-z_][\w]*\()", "", value)  # schema-qualified function
    return value.lower()


# ---------------------------------------------------------------- expected effects


@dataclass
class Effect:
    """One thing a statement leaves in the catalogs: an object present or absent, or an attribute's value."""

    stmt: int
    kind: str                   # table, column, index, constraint, enum, enum_label, extension, view, ...
    name: str                   # schema.object (for column/constraint/trigger: schema.table)
    sub: str | None = None      # column, constraint, trigger or label name
    mode: str = "exists"        # exists | absent | attr
    attr: str | None = None     # type | not_null | default | unique | labels | position
    expect: object = True
    confident: bool = True      # a mismatch means absent (False); otherwise cannot tell
    conditional: bool = False   # IF NOT EXISTS / IF EXISTS / OR REPLACE: may be a no-op
    created_here: bool = False  # a drop of something this migration created earlier
    declared: bool = False      # attribute declared with a new object (not an ALTER of an old one)
    table: str | None = None    # for indexes: their table
    superseded_by: object = None

    @property
    def key(self) -> tuple:
        return (self.kind, self.name, self.sub, self.attr)

    @property
    def object_key(self) -> tuple:
        return (self.kind, self.name, self.sub)

    def label(self) -> str:
        obj = self.name if self.sub is None else "%s.%s" % (self.name, self.sub)
        if self.mode == "attr":
            return "%s %s %s = %r" % (self.kind, obj, self.attr, self.expect)
        return "%s %s %s" % (self.kind, obj, "present" if self.mode == "exists" else "absent")


class Model:
    """The migration's effects in order; later statements supersede or rename earlier expectations.

    Effects are indexed by object name and by table, so a 10,000-statement file stays linear.
    """

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.effects: list = []
        self.last: dict = {}
        self.created: set = set()
        self.by_name: dict = {}
        self.by_table: dict = {}

    def qual(self, names) -> str:
        names = list(names)
        return qualified(names[0], names[1]) if len(names) >= 2 else qualified(self.schema, names[0])

    def rel(self, rangevar: dict | None) -> str:
        rangevar = rangevar or {}
        return qualified(rangevar.get("schemaname") or self.schema, rangevar.get("relname"))

    def add(self, effect: Effect) -> None:
        previous = self.last.get(effect.key)
        if previous is not None and previous.stmt != effect.stmt:
            previous.superseded_by = effect
        if effect.mode == "absent":
            effect.created_here = effect.object_key in self.created
            for other in self._related(effect):  # dropping an object also drops what hangs on it
                if other.stmt != effect.stmt and other.superseded_by is None and self._depends(other, effect):
                    other.superseded_by = effect
            self.created.discard(effect.object_key)
        elif effect.mode == "exists":
            self.created.add(effect.object_key)
        self.last[effect.key] = effect
        self.effects.append(effect)
        self.by_name.setdefault(effect.name, []).append(effect)
        if effect.table:
            self.by_table.setdefault(effect.table, []).append(effect)

    def _related(self, drop: Effect) -> list:
        related = list(self.by_name.get(drop.name, ()))
        if drop.kind == "table":
            related += self.by_table.get(drop.name, ())
        elif drop.kind == "constraint":
            related += self.by_name.get(qualified(drop.name.rsplit(".", 1)[0], drop.sub), ())
        return related

    @staticmethod
    def _depends(other: Effect, drop: Effect) -> bool:
        if other.object_key == drop.object_key:
            return True
        if drop.kind == "table":
            return (other.kind in ("column", "constraint", "trigger") and other.name == drop.name) or \
                (other.kind == "index" and other.table == drop.name)
        if drop.kind == "column":
            return other.kind == "column" and other.name == drop.name and other.sub == drop.sub
        if drop.kind == "enum":
            return other.kind == "enum_label" and other.name == drop.name
        if drop.kind == "constraint":  # a primary key or unique constraint takes its index along
            return other.kind == "index" and other.name == qualified(drop.name.rsplit(".", 1)[0], drop.sub)
        return False

    def effects_named(self, name: str) -> list:
        return list(self.by_name.get(name, ()))

    def rename(self, kind: str, name: str, sub: str | None, new_name: str, new_sub: str | None) -> None:
        """Earlier expectations about the old name now hold for the new name."""
        touched = []
        for effect in self.by_name.get(name, ()):
            if kind == "table" and effect.kind in ("table", "column", "constraint", "trigger"):
                touched.append((effect, new_name, effect.sub))
            elif effect.kind == kind and effect.sub == sub:
                touched.append((effect, new_name, new_sub))
        if kind == "table":
            for effect in self.by_table.pop(name, ()):
                effect.table = new_name
                self.by_table.setdefault(new_name, []).append(effect)
        for effect, renamed, renamed_sub in touched:
            if self.last.get(effect.key) is effect:
                del self.last[effect.key]
            self.by_name[name].remove(effect)
            old_object = effect.object_key
            effect.name, effect.sub = renamed, renamed_sub
            self.by_name.setdefault(renamed, []).append(effect)
            if effect.superseded_by is None:
                self.last[effect.key] = effect
            if old_object in self.created:
                self.created.discard(old_object)
                self.created.add(effect.object_key)


def _column_effects(model: Model, stmt: int, table: str, coldef: dict, table_pk: set, conditional: bool) -> None:
    column = coldef.get("colname")
    type_node = coldef.get("typeName") or {}
    model.add(Effect(stmt, "column", table, column, conditional=conditional))
    names = strings(type_node.get("names"))
    serial = len(names) == 1 and names[0] in _SERIALS
    text, confident = type_text(type_node, model.schema)
    if text is not None:
        model.add(Effect(stmt, "column", table, column, "attr", "type", text, confident=confident, declared=True))
    not_null = serial or column in table_pk
    default = None
    has_default = serial
    identity = False
    for item in coldef.get("constraints") or ():
        con = item.get("Constraint", {})
        contype = con.get("contype")
        if contype in ("CONSTR_NOTNULL", "CONSTR_PRIMARY"):
            not_null = True
        elif contype == "CONSTR_DEFAULT":
            has_default, default = True, default_text(con.get("raw_expr"))
        elif contype in ("CONSTR_IDENTITY", "CONSTR_GENERATED"):
            identity = True
            not_null = not_null or contype == "CONSTR_IDENTITY"
        _inline_constraint(model, stmt, table, column, con)
    model.add(Effect(stmt, "column", table, column, "attr", "not_null", not_null, declared=True))
    if not identity:
        model.add(Effect(stmt, "column", table, column, "attr", "default", (has_default, default), declared=True))
    if serial:
        model.add(Effect(stmt, "sequence", qualified(table.rsplit(".", 1)[0], "%s_%s_seq" % (table.rsplit(".", 1)[1], column))))


_CONTYPES = {"CONSTR_PRIMARY": "p", "CONSTR_UNIQUE": "u", "CONSTR_FOREIGN": "f", "CONSTR_CHECK": "c", "CONSTR_EXCLUSION": "x"}
_DEFAULT_SUFFIX = {"p": "pkey", "u": "key", "f": "fkey", "c": "check", "x": "excl"}


def _constraint_name(table: str, con: dict, column: str | None) -> str | None:
    """The name PostgreSQL gives a constraint declared without one (short names only)."""
    if con.get("conname"):
        return con["conname"]
    contype = _CONTYPES.get(con.get("contype"))
    relname = table.rsplit(".", 1)[1]
    if contype == "p":
        name = "%s_pkey" % relname
    else:
        columns = [column] if column else strings(con.get("keys") or con.get("fk_attrs"))
        if not columns or contype is None or contype == "x":
            return None
        name = "%s_%s_%s" % (relname, "_".join(columns), _DEFAULT_SUFFIX[contype])
    return name if len(name.encode("utf-8")) <= 63 else None


def _inline_constraint(model: Model, stmt: int, table: str, column: str | None, con: dict, conditional: bool = False) -> None:
    contype = _CONTYPES.get(con.get("contype"))
    if contype is None:
        return
    name = _constraint_name(table, con, column)
    if name is None:
        return
    model.add(Effect(stmt, "constraint", table, name, conditional=conditional))
    model.add(Effect(stmt, "constraint", table, name, "attr", "type", contype, declared=True))
    if contype in ("p", "u") and not con.get("indexname"):
        schema = table.rsplit(".", 1)[0]
        model.add(Effect(stmt, "index", qualified(schema, name), table=table, conditional=conditional))


def _create_table(model: Model, stmt: int, node: dict) -> None:
    table = model.rel(node.get("relation"))
    conditional = bool(node.get("if_not_exists"))
    model.add(Effect(stmt, "table", table, conditional=conditional))
    elements = node.get("tableElts") or ()
    table_pk = set()
    for element in elements:
        con = element.get("Constraint")
        if con and con.get("contype") == "CONSTR_PRIMARY":
            table_pk.update(strings(con.get("keys")))
    for element in elements:
        if "ColumnDef" in element:
            _column_effects(model, stmt, table, element["ColumnDef"], table_pk, conditional)
        elif "Constraint" in element:
            _inline_constraint(model, stmt, table, None, element["Constraint"], conditional)


def _alter_table(model: Model, stmt: int, node: dict) -> bool:
    """Effects of ALTER TABLE; False when some subcommand has no probe."""
    if node.get("objtype") not in (None, "OBJECT_TABLE"):
        return False
    table = model.rel(node.get("relation"))
    checked_all = True
    for item in node.get("cmds") or ():
        cmd = item.get("AlterTableCmd", {})
        subtype, column = cmd.get("subtype"), cmd.get("name")
        definition = cmd.get("def") or {}
        if subtype == "AT_AddColumn":
            _column_effects(model, stmt, table, definition.get("ColumnDef", {}), set(), bool(cmd.get("missing_ok")))
        elif subtype == "AT_DropColumn":
            model.add(Effect(stmt, "column", table, column, "absent", conditional=bool(cmd.get("missing_ok"))))
        elif subtype == "AT_AlterColumnType":
            text, confident = type_text(definition.get("ColumnDef", {}).get("typeName") or {}, model.schema)
            if text is None:
                checked_all = False
            else:
                model.add(Effect(stmt, "column", table, column, "attr", "type", text, confident=confident))
        elif subtype in ("AT_SetNotNull", "AT_DropNotNull"):
            model.add(Effect(stmt, "column", table, column, "attr", "not_null", subtype == "AT_SetNotNull"))
        elif subtype == "AT_ColumnDefault":
            if definition:
                model.add(Effect(stmt, "column", table, column, "attr", "default", (True, default_text(definition))))
            else:
                model.add(Effect(stmt, "column", table, column, "attr", "default", (False, None)))
        elif subtype == "AT_AddConstraint":
            con = definition.get("Constraint", {})
            if _constraint_name(table, con, None) is None:
                checked_all = False
            _inline_constraint(model, stmt, table, None, con)
        elif subtype == "AT_DropConstraint":
            model.add(Effect(stmt, "constraint", table, column, "absent", conditional=bool(cmd.get("missing_ok"))))
        elif subtype == "AT_ValidateConstraint":
            continue
        else:
            checked_all = False
    return checked_all


def _drop(model: Model, stmt: int, node: dict) -> bool:
    kind = {"OBJECT_TABLE": "table", "OBJECT_INDEX": "index", "OBJECT_TYPE": "enum", "OBJECT_VIEW": "view",
            "OBJECT_MATVIEW": "view", "OBJECT_SEQUENCE": "sequence", "OBJECT_EXTENSION": "extension",
            "OBJECT_SCHEMA": "schema", "OBJECT_FUNCTION": "function", "OBJECT_PROCEDURE": "function",
            "OBJECT_TRIGGER": "trigger"}.get(node.get("removeType"))
    if kind is None:
        return False
    conditional = bool(node.get("missing_ok"))
    for obj in node.get("objects") or ():
        if kind in ("extension", "schema"):
            name = obj.get("String", {}).get("sval")
            model.add(Effect(stmt, kind, name, mode="absent", conditional=conditional))
        elif kind == "function":
            names = strings(obj.get("ObjectWithArgs", {}).get("objname"))
            model.add(Effect(stmt, kind, model.qual(names), mode="absent", conditional=True))  # overloads: cannot be sure
        elif kind == "trigger":
            names = strings(obj.get("List", {}).get("items"))
            model.add(Effect(stmt, kind, model.qual(names[:-1]), names[-1], "absent", conditional=conditional))
        else:
            names = strings(obj.get("List", {}).get("items")) if "List" in obj else strings(obj.get("TypeName", {}).get("names"))
            model.add(Effect(stmt, kind, model.qual(names), mode="absent", conditional=conditional))
    return True


def _rename(model: Model, stmt: int, node: dict) -> bool:
    rtype, new = node.get("renameType"), node.get("newname")
    relation = node.get("relation")
    if rtype in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_SEQUENCE", "OBJECT_INDEX"):
        kind = {"OBJECT_TABLE": "table", "OBJECT_VIEW": "view", "OBJECT_SEQUENCE": "sequence", "OBJECT_INDEX": "index"}[rtype]
        old = model.rel(relation)
        schema = old.rsplit(".", 1)[0]
        new_name = qualified(schema, new)
        created = (kind, old, None) in model.created
        table = None
        if kind == "index":
            # Renaming an index that backs a constraint renames the constraint, and the other way round.
            for effect in model.effects_named(old):
                if effect.kind == "index":
                    table = effect.table
            if table:
                model.rename("constraint", table, old.rsplit(".", 1)[1], table, new)
        model.rename(kind, old, None, new_name, None)
        model.add(Effect(stmt, kind, new_name, table=table))
        if not created:
            model.add(Effect(stmt, kind, old, mode="absent"))
        return True
    if rtype == "OBJECT_COLUMN":
        table = model.rel(relation)
        created = ("column", table, node.get("subname")) in model.created
        model.rename("column", table, node.get("subname"), table, new)
        model.add(Effect(stmt, "column", table, new))
        if not created:
            model.add(Effect(stmt, "column", table, node.get("subname"), "absent"))
        return True
    if rtype == "OBJECT_TABCONSTRAINT":
        table = model.rel(relation)
        old = node.get("subname")
        created = ("constraint", table, old) in model.created
        schema = table.rsplit(".", 1)[0]
        model.rename("constraint", table, old, table, new)
        model.rename("index", qualified(schema, old), None, qualified(schema, new), None)
        model.add(Effect(stmt, "constraint", table, new))
        if not created:
            model.add(Effect(stmt, "constraint", table, old, "absent"))
        return True
    if rtype == "OBJECT_TYPE":
        old = model.qual(strings(node.get("object", {}).get("List", {}).get("items")))
        new_name = qualified(old.rsplit(".", 1)[0], new)
        created = ("enum", old, None) in model.created
        model.rename("enum", old, None, new_name, None)
        for effect in model.effects_named(old):
            if effect.kind == "enum_label":
                model.rename("enum_label", old, effect.sub, new_name, effect.sub)
        model.add(Effect(stmt, "enum", new_name))
        if not created:
            model.add(Effect(stmt, "enum", old, mode="absent"))
        return True
    return False


def build_model(statements: list, schema: str) -> tuple:
    """(model, {statement index: reason it has no probe}) for a parsed migration."""
    model = Model(schema)
    unchecked: dict = {}
    for statement in statements:
        node, index, node_type = statement.node, statement.index, statement.node_type
        if statement.kind in NEUTRAL_KINDS:
            continue
        if statement.is_data:
            unchecked[index] = "changes rows, not the schema: the catalogs cannot show whether it ran"
        elif node_type == "DoStmt":
            unchecked[index] = "an opaque DO block: its effect cannot be read from the statement"
        elif node_type == "CreateStmt":
            _create_table(model, index, node)
        elif node_type == "AlterTableStmt":
            if not _alter_table(model, index, node):
                unchecked[index] = "some ALTER TABLE subcommand has no probe"
        elif node_type == "IndexStmt":
            name = node.get("idxname")
            if name:
                table = model.rel(node.get("relation"))
                index_name = qualified(table.rsplit(".", 1)[0], name)
                model.add(Effect(index, "index", index_name, table=table, conditional=bool(node.get("if_not_exists"))))
                model.add(Effect(index, "index", index_name, None, "attr", "unique", bool(node.get("unique")), declared=True))
            else:
                unchecked[index] = "an index without a name: PostgreSQL chooses it"
        elif node_type == "DropStmt":
            if not _drop(model, index, node):
                unchecked[index] = "no probe for this kind of DROP"
        elif node_type == "RenameStmt":
            if not _rename(model, index, node):
                unchecked[index] = "no probe for this kind of rename"
        elif node_type == "CreateEnumStmt":
            name = model.qual(strings(node.get("typeName")))
            labels = [v.get("String", {}).get("sval") for v in node.get("vals") or ()]
            model.add(Effect(index, "enum", name))
            model.add(Effect(index, "enum", name, None, "attr", "labels", labels, declared=True))
        elif node_type == "AlterEnumStmt":
            name = model.qual(strings(node.get("typeName")))
            if node.get("oldVal"):
                model.add(Effect(index, "enum_label", name, node.get("newVal")))
                model.add(Effect(index, "enum_label", name, node["oldVal"], "absent"))
            else:
                model.add(Effect(index, "enum_label", name, node.get("newVal"), conditional=bool(node.get("skipIfNewValExists"))))
                if node.get("newValNeighbor"):
                    model.add(Effect(index, "enum_label", name, node.get("newVal"), "attr", "position",
                                     (node["newValNeighbor"], bool(node.get("newValIsAfter"))), declared=True))
            # The label list the CREATE TYPE expected no longer holds as written.
            labels = model.last.get(("enum", name, None, "labels"))
            if labels is not None:
                labels.superseded_by = Effect(index, "enum_label", name)
        elif node_type == "CreateExtensionStmt":
            model.add(Effect(index, "extension", node.get("extname"), conditional=bool(node.get("if_not_exists"))))
        elif node_type == "CreateSeqStmt":
            model.add(Effect(index, "sequence", model.rel(node.get("sequence")), conditional=bool(node.get("if_not_exists"))))
        elif node_type == "ViewStmt":
            model.add(Effect(index, "view", model.rel(node.get("view")), conditional=bool(node.get("replace"))))
        elif node_type == "CreateTableAsStmt" and node.get("objtype") == "OBJECT_MATVIEW":
            model.add(Effect(index, "view", model.rel(node.get("into", {}).get("rel")), conditional=bool(node.get("if_not_exists"))))
        elif node_type == "CreateFunctionStmt":
            model.add(Effect(index, "function", model.qual(strings(node.get("funcname"))), conditional=bool(node.get("replace"))))
        elif node_type == "CreateTrigStmt":
            model.add(Effect(index, "trigger", model.rel(node.get("relation")), node.get("trigname"),
                             conditional=bool(node.get("replace"))))
        elif node_type == "CreateSchemaStmt":
            model.add(Effect(index, "schema", node.get("schemaname"), conditional=bool(node.get("if_not_exists"))))
        else:
            unchecked[index] = "no catalog probe for %s" % statement.kind
    return model, unchecked


# ---------------------------------------------------------------- probing a snapshot


def lookup(flat: dict, effect: Effect) -> tuple:
    """(exists, value) of the effect's object in a flattened snapshot."""
    kind, name, sub = effect.kind, effect.name, effect.sub
    if kind == "column":
        value = flat.get(("column", "%s.%s" % (name, sub)))
        return value is not None, value
    if kind in ("constraint", "trigger"):
        value = flat.get((kind, "%s.%s" % (name, sub)))
        return value is not None, value
    if kind == "enum_label":
        labels = flat.get(("enum", name))
        return bool(labels) and sub in labels, labels
    if kind == "function":
        prefix = name + "("
        found = [k for k in flat if k[0] == "function" and k[1].startswith(prefix)]
        return bool(found), None
    if kind == "view":
        value = flat.get(("view", name))
        return value is not None, value
    value = flat.get((kind, name))
    return value is not None, value


def attr_matches(effect: Effect, value) -> tuple:
    """(matches, confident) of an attribute against the catalog value of its object."""
    if effect.attr == "type":
        return value.get("type") == effect.expect, effect.confident
    if effect.attr == "not_null":
        return bool(value.get("not_null")) == effect.expect, True
    if effect.attr == "default":
        wanted, text = effect.expect
        actual = value.get("default")
        if (actual is not None) != wanted:
            return False, True
        if not wanted or text is None:
            return True, True
        return normalize_catalog_default(actual) == text, False
    if effect.attr == "unique":
        return bool(value.get("unique")) == effect.expect, True
    if effect.attr == "labels":
        return list(value) == list(effect.expect), True
    if effect.attr == "position":
        neighbor, after = effect.expect
        labels = list(value or ())
        if neighbor not in labels or effect.sub not in labels:
            return False, False
        return labels.index(effect.sub) == labels.index(neighbor) + (1 if after else -1), True
    return False, False


@dataclass
class Finding:
    result: object          # True / False / None
    certain: bool           # False: could not be checked (counts against applied / not_applied)
    text: str


def probe(effect: Effect, live: dict, before: dict | None) -> Finding:
    exists, value = lookup(live, effect)
    if effect.superseded_by is not None:
        later = effect.superseded_by
        if effect.mode == "exists" and later.mode == "absent" and later.object_key == effect.object_key and exists:
            return Finding(True, True, "%s: present, so this ran and statement %d did not" % (effect.label(), later.stmt))
        return Finding(None, True, "%s: superseded by statement %d" % (effect.label(), later.stmt))
    before_exists, before_value = lookup(before, effect) if before is not None else (None, None)
    if effect.mode == "exists":
        if not exists:
            return Finding(False, True, "%s: absent" % effect.label())
        if before is not None and before_exists:
            return Finding(None, True, "%s: present, but also before this migration" % effect.label())
        if effect.conditional and before is None:
            return Finding(None, True, "%s: present, but the statement is conditional and may have found it there"
                           % effect.label())
        return Finding(True, True, "%s: present" % effect.label())
    if effect.mode == "absent":
        if exists:
            return Finding(False, True, "%s: still there" % effect.label())
        if effect.created_here:
            return Finding(None, True, "%s: absent, as it would be had nothing run (created earlier in this migration)"
                           % effect.label())
        if before is not None and not before_exists:
            return Finding(None, True, "%s: absent, but did not exist before this migration either" % effect.label())
        if effect.conditional and before is None:
            return Finding(None, True, "%s: absent, but IF EXISTS: it may never have existed" % effect.label())
        return Finding(True, True, "%s: absent" % effect.label())
    # attribute of an object
    if not exists:
        return Finding(None, True, "%s: object absent" % effect.label())
    matches, confident = attr_matches(effect, value)
    if not matches:
        if confident:
            return Finding(False, True, "%s: differs (%s)" % (effect.label(), _shown(effect, value)))
        return Finding(None, False, "%s: cannot compare with %s" % (effect.label(), _shown(effect, value)))
    if before is not None and before_exists:
        if attr_matches(effect, before_value)[0]:
            return Finding(None, True, "%s: as expected, but the same before this migration" % effect.label())
        return Finding(True, True, "%s: as expected (it differed before)" % effect.label())
    if not effect.declared and before is None:
        return Finding(None, True, "%s: as expected, but without a shadow database the old value is unknown"
                       % effect.label())
    return Finding(True, True, "%s: as expected" % effect.label())


def _shown(effect: Effect, value) -> str:
    if isinstance(value, dict) and effect.attr in value:
        return "found %r" % (value[effect.attr],)
    if effect.attr == "default" and isinstance(value, dict):
        return "found %r" % (value.get("default"),)
    if isinstance(value, list):
        return "found %s" % ", ".join(value)
    return "found %r" % (value,)


def judge_statements(parsed, schema: str, live_snapshot: dict, before_snapshot: dict | None) -> list:
    """Per statement: present True / False / None, what was checked, and whether it could be checked."""
    model, unchecked = build_model(parsed.statements, schema)
    live = flatten(live_snapshot)
    before = flatten(before_snapshot) if before_snapshot is not None else None
    by_stmt: dict = {}
    for effect in model.effects:
        by_stmt.setdefault(effect.stmt, []).append(probe(effect, live, before))
    # An object created then dropped by this migration and absent now: both ran, or neither did.
    undone = {}
    for effect in model.effects:
        later = effect.superseded_by
        if (effect.mode == "exists" and later is not None and later.mode == "absent"
                and later.object_key == effect.object_key and not lookup(live, effect)[0]):
            undone.setdefault(effect.stmt, set()).add(later.stmt)
    judged = []
    for statement in parsed.statements:
        entry = statement.as_dict()
        findings = by_stmt.get(statement.index, [])
        results = [f.result for f in findings]
        uncertain = statement.index in unchecked or any(not f.certain for f in findings)
        has_true, has_false = True in results, False in results
        entry["present"] = True if has_true and not has_false else (False if has_false and not has_true else None)
        entry["checked"] = [f.text for f in findings]
        if statement.index in unchecked:
            entry["checked"].append("cannot tell: " + unchecked[statement.index])
        elif statement.kind in NEUTRAL_KINDS:
            entry["checked"].append("no lasting effect on the schema (transaction control or session setting)")
        if has_true and has_false:
            entry["checked"].append("some effects present, some absent: neither applied nor untouched")
            entry["_status"] = "mixed"
        elif has_true:
            entry["_status"] = "present"
        elif has_false:
            entry["_status"] = "absent"
        elif uncertain:
            entry["_status"] = "unknown"
        else:
            entry["_status"] = "neutral"
        judged.append(entry)
    _settle_undone(judged, undone)
    return judged


def _settle_undone(judged: list, undone: dict) -> None:
    """What ran is a prefix of the file: when the drop comes after an absent statement, it did not
    run, so the object it drops was never created either."""
    by_index = {entry["index"]: entry for entry in judged}
    changed = True
    while changed:
        changed = False
        absent = [e["index"] for e in judged if e["_status"] in ("absent", "mixed")]
        if not absent:
            return
        first = min(absent)
        for index, drops in undone.items():
            entry = by_index[index]
            if entry["_status"] == "neutral" and all(d > first for d in drops):
                entry["_status"], entry["present"] = "absent", False
                entry["checked"].append("not run: what it created is absent and the statement%s that would drop it "
                                        "(%s) come%s after absent statement %d" % (
                                            "s" if len(drops) > 1 else "", ", ".join(str(d) for d in sorted(drops)),
                                            "" if len(drops) > 1 else "s", first))
                changed = True


def _ranges(indexes: list) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    runs: list = []
    for i in indexes:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else "%s-%s" % (a, b) for a, b in runs)


def decide(judged: list, error: dict | None = None) -> tuple:
    """(verdict, reason) from the judged statements.

    Every engine runs statements in order and stops at the first failure, so what ran is a prefix
    of the file: a statement that cannot be checked is taken as run when a later one is present,
    and as not run when an earlier one is absent. Anything else leaves the verdict unknown.
    """
    present = [s["index"] for s in judged if s["_status"] in ("present", "mixed")]
    absent = [s["index"] for s in judged if s["_status"] in ("absent", "mixed")]
    unknown = [s["index"] for s in judged if s["_status"] == "unknown"]
    mixed = [s["index"] for s in judged if s["_status"] == "mixed"]
    hand_made = bool(error and error.get("sqlstate") in DUPLICATE_SQLSTATES)
    if present and absent:
        reason = "statements %s present, %s absent" % (_ranges(sorted(set(present) - set(mixed))) or "none",
                                                       _ranges(sorted(set(absent) - set(mixed))) or "none")
        if mixed:
            reason += ", %s half present" % _ranges(mixed)
        if unknown:
            reason += ", %s cannot be checked" % _ranges(unknown)
        return "partial", reason
    if present:
        trailing = [i for i in unknown if i > max(present)]
        if trailing:
            return "unknown", ("every checkable statement is present, but statement%s %s after the last of them cannot be "
                               "checked: the failure may have been there" % ("s" if len(trailing) > 1 else "", _ranges(trailing)))
        if unknown and hand_made:
            return "unknown", ("every checkable statement is present, but the migration failed on an object that already "
                               "existed (made by hand?), so statements %s that cannot be checked may never have run"
                               % _ranges(unknown))
        return "applied", "all %d checkable statement%s present%s" % (
            len(present), "s" if len(present) != 1 else "",
            (" (statements %s cannot be checked but ran before present ones)" % _ranges(unknown)) if unknown else "")
    if absent:
        leading = [i for i in unknown if i < min(absent)]
        if leading:
            return "unknown", ("no checkable statement is present, but statement%s %s before the first of them cannot be "
                               "checked and may have committed on its own" % ("s" if len(leading) > 1 else "", _ranges(leading)))
        return "not_applied", "none of the %d checkable statement%s present" % (len(absent), "s" if len(absent) != 1 else "")
    if unknown:
        return "unknown", "no statement can be checked in the catalogs (statements %s: data changes or opaque blocks)" % _ranges(unknown)
    return "unknown", "the migration has no effect that the catalogs can show"


# ---------------------------------------------------------------- shadow replay


def apply_script(conn, script: str) -> None:
    """Run a migration.sql as the native engine does: one simple-query call, one implicit transaction.

    A script with CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction block, so it is sent
    statement by statement (what Prisma >= 7.4 does).
    """
    parsed = parse_script(script)
    with conn.cursor() as cur:
        if parsed.has_concurrently:
            for statement in parsed.statements:
                cur.execute(statement.sql)
        elif script.strip():
            cur.execute(script)  # no parameters: psycopg2 sends the text as is (PQexec)


def _server_fingerprint(conn) -> tuple:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_postmaster_start_time(), current_database(), current_setting('port')")
        return cur.fetchone()


def _reset_shadow(conn, schemas_before: set) -> None:
    """Drop what the replay created in a shadow_url database that was empty before it."""
    with conn.cursor() as cur:
        cur.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")
        for (name,) in cur.fetchall():
            cur.execute("DROP EXTENSION IF EXISTS %s CASCADE" % quote_ident(name))
        cur.execute("SELECT nspname FROM pg_namespace n WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
                    "AND nspname NOT LIKE 'pg\\_%%'")
        for (name,) in cur.fetchall():
            if name not in schemas_before:
                cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % quote_ident(name))
        for schema in sorted(schemas_before):
            q = quote_ident(schema)
            cur.execute("SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')", (schema,))
            words = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}
            for name, kind in cur.fetchall():
                cur.execute("DROP %s IF EXISTS %s.%s CASCADE" % (words[kind], q, quote_ident(name)))
            cur.execute("SELECT p.oid::regprocedure::text, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname = %s", (schema,))
            for signature, kind in cur.fetchall():
                cur.execute("DROP %s IF EXISTS %s CASCADE" % ("PROCEDURE" if kind == "p" else "FUNCTION", signature))
            cur.execute("SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %s "
                        "AND t.typtype IN ('e', 'd', 'c', 'r', 'm') AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class "
                        "WHERE oid = t.typrelid) = 'c')", (schema,))
            for (name,) in cur.fetchall():
                cur.execute("DROP TYPE IF EXISTS %s.%s CASCADE" % (q, quote_ident(name)))


@dataclass
class ShadowResult:
    status: str                       # matches_after | matches_before | no_schema_change | differs | unavailable | error
    message: str
    database: str | None = None       # "temporary" or "shadow_url"
    before: dict | None = field(default=None, repr=False)
    after: dict | None = field(default=None, repr=False)
    differences_from_before: list = field(default_factory=list)
    differences_from_after: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"status": self.status, "message": self.message, "database": self.database,
                "differences_from_before": self.differences_from_before,
                "differences_from_after": self.differences_from_after}


def _replay(conn, prior: list, script: str, schema: str) -> tuple:
    """(before, after) snapshots, or raise PrismaOpsError naming the migration that failed to replay."""
    with conn.cursor() as cur:
        if schema != "public":
            cur.execute("CREATE SCHEMA IF NOT EXISTS %s" % quote_ident(schema))
        cur.execute("SELECT set_config('search_path', %s, false)", (quote_ident(schema),))
    for name, text in prior:
        try:
            apply_script(conn, text)
        except SqlParseError as exc:
            raise PrismaOpsError("migration %s cannot be parsed: %s" % (name, exc.msg))
        except Exception as exc:  # psycopg2 errors of every class end the replay the same way
            raise PrismaOpsError("migration %s failed in the shadow database: %s" % (name, _first_line(exc)))
    before = take_snapshot(conn)
    try:
        apply_script(conn, script)
    except Exception as exc:  # the failed migration may fail on an empty database too
        raise PrismaOpsError("the failed migration itself fails in the shadow database too: %s" % _first_line(exc))
    return before, take_snapshot(conn)


def _first_line(exc) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__


def shadow_replay(live_conn, spec, prior: list, script: str, shadow_url: str | None = None) -> ShadowResult:
    """Replay migrations 1..N-1 and N in a scratch database; always removes what it created."""
    secrets_list = list(spec.secrets)
    if shadow_url:
        shadow_spec = parse_database_url(shadow_url, "shadow_url")
        secrets_list += shadow_spec.secrets
        shadow_spec.schema = spec.schema
        conn = connect(shadow_spec, application_name="prisma_ops.migrate/evidence-shadow")
        try:
            if _server_fingerprint(conn) == _server_fingerprint(live_conn):
                raise PrismaOpsError("shadow_url points at the database being inspected (%s): give a separate, empty "
                                     "database" % spec.target)
            start = take_snapshot(conn)
            if not is_empty(start):
                raise PrismaOpsError("the shadow_url database %s is not empty: evidence resets only what it creates, so "
                                     "it needs an empty database" % shadow_spec.target)
            try:
                before, after = _replay(conn, prior, script, spec.schema)
            except PrismaOpsError as exc:
                return ShadowResult("error", scrub(exc.msg, secrets_list), "shadow_url")
            finally:
                _reset_shadow(conn, set(start["schemas"]) | {"public"})
            return _shadow_compare(before, after, "shadow_url")
        finally:
            conn.close()
    with live_conn.cursor() as cur:
        cur.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cur.fetchone()
    if not row or not row[0]:
        return ShadowResult("unavailable", "no shadow_url, and user %r may not create a temporary database (no CREATEDB)"
                            % spec.user)
    name = SHADOW_PREFIX + secrets.token_hex(6)
    admin = connect(spec, application_name="prisma_ops.migrate/evidence-shadow")
    created = False
    try:
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE %s TEMPLATE template0" % quote_ident(name))
        created = True
        conn = connect(replace(spec, dbname=name), application_name="prisma_ops.migrate/evidence-shadow")
        try:
            before, after = _replay(conn, prior, script, spec.schema)
        except PrismaOpsError as exc:
            return ShadowResult("error", scrub(exc.msg, secrets_list), "temporary")
        finally:
            conn.close()
        return _shadow_compare(before, after, "temporary")
    except PrismaOpsError:
        raise
    except Exception as exc:  # CREATE DATABASE refused (quota, template busy...): evidence goes on without it
        return ShadowResult("unavailable", "cannot create a temporary database: %s" % scrub(_first_line(exc), secrets_list))
    finally:
        try:
            if created:
                _drop_database(admin, name)
        finally:
            admin.close()


def _drop_database(admin, name: str) -> None:
    with admin.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int")
        force = " WITH (FORCE)" if cur.fetchone()[0] >= 130000 else ""  # FORCE: PostgreSQL 13 and later
        cur.execute("DROP DATABASE IF EXISTS %s%s" % (quote_ident(name), force))


def _shadow_compare(before: dict, after: dict, where: str) -> ShadowResult:
    result = ShadowResult("pending", "", where, before=before, after=after)
    if not compare_snapshots(before, after):
        result.status = "no_schema_change"
        result.message = "the migration changes no schema object, so the replay cannot tell"
    return result


def compare_with_live(result: ShadowResult, live: dict) -> ShadowResult:
    if result.before is None or result.status == "no_schema_change":
        return result
    from_before = compare_snapshots(result.before, live)
    from_after = compare_snapshots(result.after, live)
    result.differences_from_before = from_before[:DIFFERENCE_LIMIT]
    result.differences_from_after = from_after[:DIFFERENCE_LIMIT]
    if not from_after:
        result.status, result.message = "matches_after", "the live schema matches the replay of migrations 1..N"
    elif not from_before:
        result.status, result.message = "matches_before", "the live schema matches the replay of migrations 1..N-1"
    else:
        result.status = "differs"
        result.message = ("the live schema matches neither replay: %d difference%s from the state after, %d from the "
                          "state before" % (len(from_after), "s" if len(from_after) != 1 else "", len(from_before),))
    return result


_AGREES = {"applied": "matches_after", "not_applied": "matches_before", "partial": "differs"}


def combine(probe_verdict: str, probe_reason: str, shadow: ShadowResult | None) -> tuple:
    """The final (verdict, reason): both methods must agree when both could judge."""
    if shadow is None or shadow.status not in ("matches_after", "matches_before", "differs"):
        return probe_verdict, probe_reason
    if probe_verdict == "unknown":
        return "unknown", "%s; the shadow replay says %s, but cannot see what the probes could not" % (
            probe_reason, shadow.status.replace("_", " "))
    if _AGREES[probe_verdict] == shadow.status:
        return probe_verdict, "%s; the shadow replay agrees (%s)" % (probe_reason, shadow.status.replace("_", " "))
    return "unknown", "statement probes say %s (%s) but the shadow replay says %s: the two methods disagree" % (
        probe_verdict.replace("_", " "), probe_reason, shadow.status.replace("_", " "))


# ---------------------------------------------------------------- one failed migration, and all of them


def migration_evidence(name: str, script: str | None, prior: list, live_conn, spec, live_snapshot: dict,
                       error: dict | None = None, shadow: bool = True, shadow_url: str | None = None) -> dict:
    """The evidence entry of one failed migration (see the module's RETURN for its shape)."""
    if script is None:
        return {"verdict": "unknown", "recommended_action": ACTIONS["unknown"], "statements": [], "shadow": None,
                "reason": "no local migration.sql for %s: nothing to compare the database with" % name}
    try:
        parsed = parse_script(script)
    except SqlParseError as exc:
        return {"verdict": "unknown", "recommended_action": ACTIONS["unknown"], "statements": [], "shadow": None,
                "reason": exc.msg}
    replay = None
    if shadow:
        replay = shadow_replay(live_conn, spec, prior, script, shadow_url)
        replay = compare_with_live(replay, live_snapshot)
    before = replay.before if replay is not None else None
    judged = judge_statements(parsed, spec.schema, live_snapshot, before)
    probe_verdict, probe_reason = decide(judged, error)
    verdict, reason = combine(probe_verdict, probe_reason, replay)
    for entry in judged:
        entry.pop("_status", None)
    return {
        "verdict": verdict,
        "recommended_action": ACTIONS[verdict],
        "reason": reason,
        "probe_verdict": probe_verdict,
        "statements": judged,
        "shadow": replay.as_dict() if replay is not None else None,
        "transaction_control": parsed.has_transaction_control,
        "concurrently": parsed.has_concurrently,
    }


def collect_evidence(conn, spec, local, report: dict, shadow: bool = True, shadow_url: str | None = None) -> dict:
    """Evidence for every failed migration of a build_report() result, keyed by name."""
    require_pglast()
    failed = report.get("failed_migrations") or []
    if not failed:
        return {}
    live_snapshot = take_snapshot(conn)
    entries = {m["name"]: m for m in report.get("migrations", ())}
    evidence = {}
    for name in failed:
        migration = local.get(name) if local is not None else None
        prior = []
        if migration is not None:
            for other in local.migrations:
                if other.name == name:
                    break
                if other.script is None:
                    prior = None  # deploy would refuse with P3015, and a replay without it means nothing
                    break
                prior.append((other.name, other.script))
        error = (entries.get(name) or {}).get("error")
        use_shadow = shadow and prior is not None and migration is not None
        evidence[name] = migration_evidence(name, migration.script if migration else None, prior or [], conn, spec,
                                            live_snapshot, error, use_shadow, shadow_url)
    return evidence
