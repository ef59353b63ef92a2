# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a migration.sql leaves in the catalogs: its expected effects, judged against the WHOLE script.

Every statement becomes effects (a table, a column and its type / nullability / default, an index,
a constraint, an enum label, a drop...). Later statements supersede or rename earlier expectations,
so a column added then dropped is expected absent. probes.py checks the effects in a snapshot.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field

from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import quote_ident
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import SqlParseError, parse_script, qualified, strings

# ---------------------------------------------------------------- the verdict rule, by parse-tree node type
#
# Every statement kind is exactly one of: probed (its effects are built below and compared with the
# definition in the catalogs), cannot tell (no probe: the verdict can only use it through the prefix
# rule), or neutral (no lasting effect on the schema). tests/unit/test_verdict_rule.py holds every
# node type of the parser to this, so a new kind needs a decision.

# Statement kinds with no lasting effect on the schema.
NEUTRAL_KINDS = frozenset(("begin", "commit", "rollback", "savepoint", "release", "set", "show", "validate_constraint"))
NEUTRAL_NODES = frozenset(("TransactionStmt", "VariableSetStmt", "VariableShowStmt"))
# SELECT is neutral only without anything that can write (functions, INTO, FOR UPDATE, data-modifying WITH).
_SELECT_SIDE_EFFECTS = ('"FuncCall"', '"intoClause"', '"lockingClause"', '"InsertStmt"', '"UpdateStmt"',
                        '"DeleteStmt"', '"MergeStmt"')
# ALTER TABLE subcommands with a probe; VALIDATE CONSTRAINT changes no definition. Any other is "cannot tell".
PROBED_ALTER_TABLE = frozenset(("AT_AddColumn", "AT_DropColumn", "AT_AlterColumnType", "AT_SetNotNull", "AT_DropNotNull",
                                "AT_ColumnDefault", "AT_AddConstraint", "AT_DropConstraint"))
NEUTRAL_ALTER_TABLE = frozenset(("AT_ValidateConstraint",))
# Node types build_model() turns into effects (CREATE TABLE AS only for materialized views).
PROBED_NODES = frozenset((
    "CreateStmt", "AlterTableStmt", "IndexStmt", "DropStmt", "RenameStmt", "CreateEnumStmt", "AlterEnumStmt",
    "CreateExtensionStmt", "CreateSeqStmt", "ViewStmt", "CreateTableAsStmt", "CreateFunctionStmt", "CreateTrigStmt",
    "CreateSchemaStmt"))
# Node types with no probe: the verdict can use them only through the prefix rule. SELECT is here too,
# unless select_is_pure() (then it is neutral). Data statements and DO blocks are the common ones.
CANNOT_TELL_NODES = frozenset((
    "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CopyStmt", "TruncateStmt", "CallStmt", "DoStmt", "SelectStmt",
    "AlterCollationStmt", "AlterDatabaseRefreshCollStmt", "AlterDatabaseSetStmt", "AlterDatabaseStmt",
    "AlterDefaultPrivilegesStmt", "AlterDomainStmt", "AlterEventTrigStmt", "AlterExtensionContentsStmt",
    "AlterExtensionStmt", "AlterFdwStmt", "AlterForeignServerStmt", "AlterFunctionStmt", "AlterObjectDependsStmt",
    "AlterObjectSchemaStmt", "AlterOpFamilyStmt", "AlterOperatorStmt", "AlterOwnerStmt", "AlterPolicyStmt",
    "AlterPublicationStmt", "AlterRoleSetStmt", "AlterRoleStmt", "AlterSeqStmt", "AlterStatsStmt",
    "AlterSubscriptionStmt", "AlterSystemStmt", "AlterTSConfigurationStmt", "AlterTSDictionaryStmt",
    "AlterTableMoveAllStmt", "AlterTableSpaceOptionsStmt", "AlterTypeStmt", "AlterUserMappingStmt", "CheckPointStmt",
    "ClosePortalStmt", "ClusterStmt", "CommentStmt", "CompositeTypeStmt", "ConstraintsSetStmt", "CreateAmStmt",
    "CreateCastStmt", "CreateConversionStmt", "CreateDomainStmt", "CreateEventTrigStmt", "CreateFdwStmt",
    "CreateForeignServerStmt", "CreateForeignTableStmt", "CreateOpClassStmt", "CreateOpFamilyStmt", "CreatePLangStmt",
    "CreatePolicyStmt", "CreatePublicationStmt", "CreateRangeStmt", "CreateRoleStmt", "CreateStatsStmt",
    "CreateSubscriptionStmt", "CreateTableSpaceStmt", "CreateTransformStmt", "CreateUserMappingStmt", "CreatedbStmt",
    "DeallocateStmt", "DeclareCursorStmt", "DefineStmt", "DiscardStmt", "DropOwnedStmt", "DropRoleStmt",
    "DropSubscriptionStmt", "DropTableSpaceStmt", "DropUserMappingStmt", "DropdbStmt", "ExecuteStmt", "ExplainStmt",
    "FetchStmt", "GrantRoleStmt", "GrantStmt", "ImportForeignSchemaStmt", "ListenStmt", "LoadStmt", "LockStmt",
    "NotifyStmt", "PLAssignStmt", "PrepareStmt", "ReassignOwnedStmt", "RefreshMatViewStmt", "ReindexStmt",
    "ReplicaIdentityStmt", "ReturnStmt", "RuleStmt", "SecLabelStmt", "SetOperationStmt", "UnlistenStmt", "VacuumStmt"))

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


def default_literal_kind(expr: dict | None) -> str | None:
    """bool / int / str for a literal default, whose catalog form is certain; None otherwise."""
    if not expr:
        return None
    if "TypeCast" in expr:
        inner = expr["TypeCast"].get("arg") or {}
        return "str" if "sval" in inner.get("A_Const", {}) else None
    const = expr.get("A_Const", {})
    for key, kind in (("boolval", "bool"), ("ival", "int"), ("sval", "str")):
        if key in const:
            return kind
    return None


def default_expectation(expr: dict | None) -> tuple:
    """(has a default, its loose text, literal kind) as a column default effect expects it."""
    return True, default_text(expr), default_literal_kind(expr)


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


# ---------------------------------------------------------------- definitions of constraints and indexes
#
# A definition is compared as a parse tree: the migration's own statement, and the catalog's
# pg_get_constraintdef / pg_get_indexdef text parsed by the same parser, both brought to one form
# (no locations, schema-qualified relations, PostgreSQL's defaults written out). Fields PostgreSQL
# stores as written are "exact": a difference means another definition. Expressions are "loose":
# PostgreSQL rewrites them (casts, parentheses, IN lists), so a difference there cannot be told.


def strip_locations(node):
    if isinstance(node, dict):
        return {k: strip_locations(v) for k, v in node.items() if k != "location"}
    if isinstance(node, list):
        return [strip_locations(v) for v in node]
    return node


@dataclass
class Definition:
    exact: dict
    loose: dict = field(default_factory=dict)
    earlier: list = field(default_factory=list)  # the exact fields before each later rename of a table or column

    def compare(self, actual: "Definition") -> tuple:
        """(matches, confident) of this expected definition, or of its form before a later rename that has not
        run yet, against the catalog's."""
        results = [self._compare(exact, actual) for exact in [self.exact] + self.earlier]
        if (True, True) in results:
            return True, True
        return False, all(confident for _matches, confident in results)

    def _compare(self, exact: dict, actual: "Definition") -> tuple:
        # A field left loose (e.g. REFERENCES t without columns) is not compared exactly on the catalog's side either.
        theirs = {k: v for k, v in actual.exact.items() if k in exact or k not in self.loose}
        if exact != theirs:
            if self._only_written_opclass_differs(exact, actual):
                return False, False
            return False, True
        if self.loose != actual.loose:
            return False, False
        return True, True

    @staticmethod
    def _only_written_opclass_differs(exact: dict, actual: "Definition") -> bool:
        """pg_get_indexdef leaves a column's default operator class out; the migration may write it."""
        mine, theirs = exact.get("params"), actual.exact.get("params")
        if not mine or not theirs or len(mine) != len(theirs):
            return False
        softened = [dict(m, opclass=None) if m.get("opclass") and not t.get("opclass") else m for m, t in zip(mine, theirs)]
        return softened != mine and dict(exact, params=softened) == actual.exact

    def _renamed(self, exact: dict) -> None:
        if exact != self.exact:
            self.earlier.append(self.exact)
            self.exact = exact

    def rename_table(self, old: str, new: str) -> None:
        self._renamed({k: (new if k in ("table", "pktable") and v == old else v) for k, v in self.exact.items()})

    def rename_column(self, table: str, old: str, new: str) -> None:
        def swap(names: list) -> list:
            return [new if n == old else n for n in names]
        exact = copy.deepcopy(self.exact)
        if exact.get("table") == table:
            for key in ("keys", "including", "fk_attrs"):
                if key in exact:
                    exact[key] = swap(exact[key])
            for param in exact.get("params", ()):
                if param.get("name") == old:
                    param["name"] = new
        if exact.get("pktable") == table and exact.get("pk_attrs"):
            exact["pk_attrs"] = swap(exact["pk_attrs"])
        self._renamed(exact)

    def columns(self) -> set:
        """Columns of its own table it names (expressions aside)."""
        names = set(self.exact.get("keys", ())) | set(self.exact.get("including", ())) | set(self.exact.get("fk_attrs", ()))
        names.update(p["name"] for p in self.exact.get("params", ()) if p.get("name"))
        return names


_FK_ACTION_DEFAULT = "a"   # NO ACTION
_FK_MATCH_DEFAULT = "s"    # MATCH SIMPLE


def constraint_definition(con: dict, table: str, schema: str, column: str | None = None) -> Definition | None:
    """The canonical definition of a Constraint node on `table`; None when it has none (EXCLUDE, USING INDEX)."""
    contype = _CONTYPES.get(con.get("contype"))
    common = {"type": contype, "table": table, "deferrable": bool(con.get("deferrable")),
              "initdeferred": bool(con.get("initdeferred"))}
    if contype in ("p", "u"):
        if con.get("indexname"):
            return None
        keys = strings(con.get("keys")) or ([column] if column else [])
        common.update(keys=keys, including=strings(con.get("including")),
                      nulls_not_distinct=bool(con.get("nulls_not_distinct")))
        return Definition(common, {"options": strip_locations(con.get("options") or [])})
    if contype == "f":
        pktable = con.get("pktable") or {}
        common.update(fk_attrs=strings(con.get("fk_attrs")) or ([column] if column else []),
                      pktable=qualified(pktable.get("schemaname") or schema, pktable.get("relname")),
                      match=con.get("fk_matchtype") or _FK_MATCH_DEFAULT,
                      on_update=con.get("fk_upd_action") or _FK_ACTION_DEFAULT,
                      on_delete=con.get("fk_del_action") or _FK_ACTION_DEFAULT,
                      on_delete_columns=strings(con.get("fk_del_set_cols")))
        pk_attrs = strings(con.get("pk_attrs"))
        if pk_attrs:
            common["pk_attrs"] = pk_attrs
            return Definition(common)
        # REFERENCES t without columns means t's primary key, which the catalog prints by name.
        return Definition(common, {"pk_attrs": None})
    if contype == "c":
        common["no_inherit"] = bool(con.get("is_no_inherit"))
        return Definition(common, {"expr": strip_locations(con.get("raw_expr"))})
    return None


_SORT_DEFAULT = "SORTBY_DEFAULT"
_NULLS_DEFAULT = "SORTBY_NULLS_DEFAULT"


def _index_param(elem: dict) -> tuple:
    """(exact, loose) parts of one IndexElem: the catalog writes out only non-default orderings."""
    ordering = elem.get("ordering") or _SORT_DEFAULT
    if ordering == "SORTBY_ASC":
        ordering = _SORT_DEFAULT
    nulls = elem.get("nulls_ordering") or _NULLS_DEFAULT
    if (ordering == _SORT_DEFAULT and nulls == "SORTBY_NULLS_LAST") or (ordering == "SORTBY_DESC" and nulls == "SORTBY_NULLS_FIRST"):
        nulls = _NULLS_DEFAULT
    opclass = strings(elem.get("opclass"))
    exact = {"name": elem.get("name"), "opclass": opclass[-1] if opclass else None, "ordering": ordering, "nulls": nulls}
    collation = strings(elem.get("collation"))
    loose = {"expr": strip_locations(elem.get("expr")), "collation": collation[-1] if collation else None,
             "opclassopts": strip_locations(elem.get("opclassopts") or [])}
    return exact, loose


def index_definition(node: dict, schema: str) -> Definition:
    """The canonical definition of an IndexStmt."""
    relation = node.get("relation") or {}
    params = [_index_param(item.get("IndexElem", {})) for item in node.get("indexParams") or ()]
    exact = {"table": qualified(relation.get("schemaname") or schema, relation.get("relname")),
             "unique": bool(node.get("unique")), "method": (node.get("accessMethod") or "btree").lower(),
             "params": [p[0] for p in params],
             "including": [item.get("IndexElem", {}).get("name") for item in node.get("indexIncludingParams") or ()],
             "nulls_not_distinct": bool(node.get("nulls_not_distinct"))}
    loose = {"params": [p[1] for p in params], "where": strip_locations(node.get("whereClause"))}
    return Definition(exact, loose)


def catalog_definition(kind: str, table: str | None, text: str | None) -> Definition | None:
    """The catalog's pg_get_constraintdef / pg_get_indexdef text in canonical form; None when it cannot be read."""
    if not text or table is None:
        return None
    schema, _dot, relname = table.partition(".")
    try:
        if kind == "index":
            statements = parse_script(text).statements
            return index_definition(statements[0].node, schema) if statements and statements[0].node_type == "IndexStmt" else None
        wrapped = "ALTER TABLE %s.%s ADD CONSTRAINT c %s" % (quote_ident(schema), quote_ident(relname), text)
        statements = parse_script(wrapped).statements
    except SqlParseError:
        return None
    cmds = statements[0].node.get("cmds") or () if statements else ()
    if len(cmds) != 1:
        return None
    return constraint_definition(cmds[0].get("AlterTableCmd", {}).get("def", {}).get("Constraint", {}), table, schema)


def select_is_pure(node: dict) -> bool:
    """A SELECT that cannot write: no function call (setval, nextval, lo_*...), no INTO, no locking, no DML in WITH."""
    text = json.dumps(node)
    return not any(marker in text for marker in _SELECT_SIDE_EFFECTS)


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
    recreated: bool = False     # the migration dropped an object of this name earlier: a name found proves nothing
    aliases: list = field(default_factory=list)     # earlier (name, sub) of the object, before later renames
    alt_expect: list = field(default_factory=list)  # earlier (value, proves) of the attribute, before a type rename
    replaces: object = None     # the earlier effect on the same key that this one supersedes

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
        self.dropped: set = set()   # objects that existed before the migration and that it drops
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
        # DROP COLUMN c, ADD COLUMN c in one statement: the drop is superseded all the same.
        # Two statements that both leave the object (CREATE, then a rename onto that name) do not supersede each other.
        if previous is not None and (previous.mode, effect.mode) != ("exists", "exists") and (
                previous.stmt != effect.stmt or (previous.mode, effect.mode) == ("absent", "exists")):
            previous.superseded_by = effect
            effect.replaces = previous
        effect.recreated = effect.mode != "absent" and effect.object_key in self.dropped
        if effect.mode == "absent":
            effect.created_here = effect.object_key in self.created
            if not effect.created_here:
                self.dropped.add(effect.object_key)
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
            related += self.by_name.get(qualified(_schema_of(drop.name), drop.sub), ())
        elif drop.kind == "column":
            related += self.by_table.get(drop.name, ())
        return related

    def _depends(self, other: Effect, drop: Effect) -> bool:
        if other.object_key == drop.object_key:
            return True
        if drop.kind == "table":
            return (other.kind in ("column", "constraint", "trigger") and other.name == drop.name) or \
                (other.kind == "index" and other.table == drop.name)
        if drop.kind == "column":
            if other.kind == "column":
                return other.name == drop.name and other.sub == drop.sub
            # An index or constraint on the dropped column goes with it (all its effects: it, and its attributes).
            definition = self.last.get((other.kind, other.name, other.sub, "definition"))
            return (other.kind in ("index", "constraint") and definition is not None
                    and isinstance(definition.expect, Definition)
                    and definition.expect.exact.get("table") == drop.name and drop.sub in definition.expect.columns())
        if drop.kind == "enum":
            return other.kind == "enum_label" and other.name == drop.name
        if drop.kind == "constraint":  # a primary key or unique constraint takes its index along
            return other.kind == "index" and other.name == qualified(_schema_of(drop.name), drop.sub)
        return False

    def effects_named(self, name: str) -> list:
        return list(self.by_name.get(name, ()))

    def rename(self, kind: str, name: str, sub: str | None, new_name: str, new_sub: str | None) -> None:
        """Earlier expectations about the old name now hold for the new name (and definitions that name it)."""
        for effect in self.effects:
            if effect.attr != "definition" or not isinstance(effect.expect, Definition):
                continue
            if kind == "table":
                effect.expect.rename_table(name, new_name)
            elif kind == "column":
                effect.expect.rename_column(name, sub, new_sub)
        if kind == "enum":
            self._rename_type(name, new_name)
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
            effect.aliases.append((effect.name, effect.sub))
            effect.name, effect.sub = renamed, renamed_sub
            self.by_name.setdefault(renamed, []).append(effect)
            if effect.superseded_by is None:
                earlier = self.last.get(effect.key)
                if earlier is not None and earlier.superseded_by is None and earlier.mode != "exists":
                    earlier.superseded_by = effect  # e.g. a drop of an old object whose name this one now takes
                self.last[effect.key] = effect
            if old_object in self.created:
                self.created.discard(old_object)
                self.created.add(effect.object_key)

    def _rename_type(self, old: str, new: str) -> None:
        """Column types that name a renamed type follow it; the earlier name still proves the ALTER ran."""
        created = ("enum", old, None) in self.created
        old_text, new_text = _type_name_text(old), _type_name_text(new)
        for effect in self.effects:
            if effect.attr != "type" or not isinstance(effect.expect, str):
                continue
            base = effect.expect.rstrip("[]")
            if base == old_text:
                effect.alt_expect.append((effect.expect, created or effect.declared))
                effect.expect = new_text + effect.expect[len(base):]


def _schema_of(name: str) -> str:
    """"public" of "public.we.ird": object names may hold dots, the schemas the collection reads do not."""
    return name.partition(".")[0]


def _object_of(name: str) -> str:
    return name.partition(".")[2]


def _type_name_text(name: str) -> str:
    """format_type() text of a schema-qualified user type."""
    schema, _dot, relname = name.partition(".")
    return "%s.%s" % (quote_ident(schema), quote_ident(relname))


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
    default = (True, None, None) if serial else (False, None, None)  # a serial's nextval() is not compared
    identity = False
    for item in coldef.get("constraints") or ():
        con = item.get("Constraint", {})
        contype = con.get("contype")
        if contype in ("CONSTR_NOTNULL", "CONSTR_PRIMARY"):
            not_null = True
        elif contype == "CONSTR_DEFAULT":
            default = default_expectation(con.get("raw_expr"))
        elif contype in ("CONSTR_IDENTITY", "CONSTR_GENERATED"):
            identity = True
            not_null = not_null or contype == "CONSTR_IDENTITY"
        _inline_constraint(model, stmt, table, column, con)
    model.add(Effect(stmt, "column", table, column, "attr", "not_null", not_null, declared=True))
    if not identity:
        model.add(Effect(stmt, "column", table, column, "attr", "default", default, declared=True))
    if serial:
        model.add(Effect(stmt, "sequence", qualified(_schema_of(table), "%s_%s_seq" % (_object_of(table), column))))


_CONTYPES = {"CONSTR_PRIMARY": "p", "CONSTR_UNIQUE": "u", "CONSTR_FOREIGN": "f", "CONSTR_CHECK": "c", "CONSTR_EXCLUSION": "x"}
_DEFAULT_SUFFIX = {"p": "pkey", "u": "key", "f": "fkey", "c": "check", "x": "excl"}


def _constraint_name(table: str, con: dict, column: str | None) -> str | None:
    """The name PostgreSQL gives a constraint declared without one (short names only)."""
    if con.get("conname"):
        return con["conname"]
    contype = _CONTYPES.get(con.get("contype"))
    relname = _object_of(table)
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
    definition = constraint_definition(con, table, model.schema, column)
    if definition is not None:
        model.add(Effect(stmt, "constraint", table, name, "attr", "definition", definition, declared=True))
    if contype in ("p", "u") and not con.get("indexname"):
        schema = _schema_of(table)
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
                model.add(Effect(stmt, "column", table, column, "attr", "default", default_expectation(definition)))
            else:
                model.add(Effect(stmt, "column", table, column, "attr", "default", (False, None, None)))
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
        schema = _schema_of(old)
        new_name = qualified(schema, new)
        created = (kind, old, None) in model.created
        table = None
        if kind == "index":
            # Renaming an index that backs a constraint renames the constraint, and the other way round.
            for effect in model.effects_named(old):
                if effect.kind == "index":
                    table = effect.table
            if table:
                model.rename("constraint", table, _object_of(old), table, new)
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
        schema = _schema_of(table)
        model.rename("constraint", table, old, table, new)
        model.rename("index", qualified(schema, old), None, qualified(schema, new), None)
        model.add(Effect(stmt, "constraint", table, new))
        if not created:
            model.add(Effect(stmt, "constraint", table, old, "absent"))
        return True
    if rtype == "OBJECT_TYPE":
        old = model.qual(strings(node.get("object", {}).get("List", {}).get("items")))
        new_name = qualified(_schema_of(old), new)
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
        if statement.kind in NEUTRAL_KINDS or (node_type == "SelectStmt" and select_is_pure(node)):
            continue
        if statement.is_data:
            unchecked[index] = "changes rows, not the schema: the catalogs cannot show whether it ran"
        elif node_type == "DoStmt":
            unchecked[index] = "an opaque DO block: its effect cannot be read from the statement"
        elif node_type not in PROBED_NODES:
            unchecked[index] = "no catalog probe for %s" % statement.kind
        elif node_type == "CreateStmt":
            _create_table(model, index, node)
        elif node_type == "AlterTableStmt":
            if not _alter_table(model, index, node):
                unchecked[index] = "some ALTER TABLE subcommand has no probe"
        elif node_type == "IndexStmt":
            name = node.get("idxname")
            if name:
                table = model.rel(node.get("relation"))
                index_name = qualified(_schema_of(table), name)
                model.add(Effect(index, "index", index_name, table=table, conditional=bool(node.get("if_not_exists"))))
                model.add(Effect(index, "index", index_name, None, "attr", "unique", bool(node.get("unique")), declared=True))
                model.add(Effect(index, "index", index_name, None, "attr", "definition", index_definition(node, model.schema),
                                 declared=True, table=table))
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
