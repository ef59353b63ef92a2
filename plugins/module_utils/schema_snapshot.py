# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A schema snapshot read from the PostgreSQL catalogs, and a comparison of two snapshots.

Used by the evidence of a failed migration (live schema vs a shadow replay) and meant for the
drift check. A snapshot is a plain, JSON-serialisable dict:

  schemas     [name]
  tables      {"schema.table": {"columns": {name: {"type", "not_null", "default", "identity", "generated"}}}}
  indexes     {"schema.index": {"table", "unique", "primary", "definition"}}
  constraints {"schema.table.name": {"type": p|u|f|c|x, "definition"}}
  enums       {"schema.type": [labels in order]}
  extensions  {name: {"schema"}}
  views       {"schema.view": {"materialized", "definition"}}
  sequences   {"schema.seq": {"type", "owned_by"}}
  functions   {"schema.name(args)": {"kind", "returns", "definition_md5"}} (md5 of pg_get_functiondef: body,
              language, volatility, settings; null for aggregates and window functions)
  triggers    {"schema.table.trigger": {"definition"}}

Everything is read with search_path = pg_catalog, so type names, defaults and definitions are
schema-qualified the same way on every server and in every session. Objects that belong to an
extension (pg_depend deptype 'e') and Prisma's own _prisma_migrations are left out.
"""

from __future__ import annotations

SYSTEM_SCHEMA_FILTER = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%' "
                        "AND n.nspname NOT LIKE 'pg\\_temp\\_%%'")
EXCLUDED_TABLES = ("_prisma_migrations",)
SECTIONS = ("schemas", "tables", "indexes", "constraints", "enums", "extensions", "views", "sequences", "functions", "triggers")
_NOT_EXTENSION_MEMBER = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass AND d.objid = {oid} "
                         "AND d.deptype = 'e')")


def _not_ext(catalog: str, oid: str) -> str:
    return _NOT_EXTENSION_MEMBER.format(catalog=catalog, oid=oid)


def quote_ident(name: str) -> str:
    """Like PostgreSQL's quote_ident: quote unless lower-case letters, digits and underscores."""
    if name and (name[0].isalpha() or name[0] == "_") and all(c.islower() or c.isdigit() or c == "_" for c in name) \
            and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def _queries(excluded: tuple) -> dict:
    ns = SYSTEM_SCHEMA_FILTER
    return {
        "schemas": "SELECT n.nspname FROM pg_namespace n WHERE %s AND %s ORDER BY 1" % (ns, _not_ext("pg_namespace", "n.oid")),
        "tables": (
            "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum "
            "WHERE c.relkind IN ('r', 'p') AND %s AND %s AND NOT (c.relname = ANY(%%(excluded)s)) "
            "ORDER BY 1, 2, a.attnum" % (ns, _not_ext("pg_class", "c.oid"))),
        "indexes": (
            "SELECT n.nspname, ic.relname, t.relname, i.indisunique, i.indisprimary, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = ic.relnamespace "
            "WHERE %s AND %s AND NOT (t.relname = ANY(%%(excluded)s)) ORDER BY 1, 2" % (ns, _not_ext("pg_class", "t.oid"))),
        "constraints": (
            "SELECT n.nspname, t.relname, co.conname, co.contype, pg_get_constraintdef(co.oid) "
            "FROM pg_constraint co JOIN pg_class t ON t.oid = co.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE %s AND %s AND NOT (t.relname = ANY(%%(excluded)s)) ORDER BY 1, 2, 3" % (ns, _not_ext("pg_class", "t.oid"))),
        "enums": (
            "SELECT n.nspname, t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
            "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE %s AND %s ORDER BY 1, 2, e.enumsortorder"
            % (ns, _not_ext("pg_type", "t.oid"))),
        "extensions": "SELECT x.extname, n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace "
                      "WHERE x.extname <> 'plpgsql' ORDER BY 1",
        "views": (
            "SELECT n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND %s AND %s ORDER BY 1, 2"
            % (ns, _not_ext("pg_class", "c.oid"))),
        "sequences": (
            "SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), "
            "(SELECT dn.nspname || '.' || dc.relname || '.' || da.attname FROM pg_depend d "
            " JOIN pg_class dc ON dc.oid = d.refobjid JOIN pg_namespace dn ON dn.oid = dc.relnamespace "
            " JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid "
            " WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') LIMIT 1) "
            "FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE %s AND %s ORDER BY 1, 2" % (ns, _not_ext("pg_class", "c.oid"))),
        "functions": (
            "SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind, "
            "pg_get_function_result(p.oid), "
            "CASE WHEN p.prokind IN ('f', 'p') THEN md5(pg_get_functiondef(p.oid)) END "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE %s AND %s ORDER BY 1, 2, 3" % (ns, _not_ext("pg_proc", "p.oid"))),
        "triggers": (
            "SELECT n.nspname, c.relname, tg.tgname, pg_get_triggerdef(tg.oid) FROM pg_trigger tg "
            "JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT tg.tgisinternal AND %s AND NOT (c.relname = ANY(%%(excluded)s)) ORDER BY 1, 2, 3" % ns),
    }


def take_snapshot(conn, excluded_tables: tuple = EXCLUDED_TABLES) -> dict:
    """Read the schema of the connected database (every non-system schema). Only reads catalogs."""
    params = {"excluded": list(excluded_tables)}
    snapshot: dict = {section: {} for section in SECTIONS}
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('search_path')")
        saved_path = cur.fetchone()[0]
        # Qualify every name the catalog functions print, the same way in every session.
        cur.execute("SELECT set_config('search_path', 'pg_catalog', false)")
        try:
            queries = _queries(excluded_tables)
            cur.execute(queries["schemas"])
            snapshot["schemas"] = [r[0] for r in cur.fetchall()]
            cur.execute(queries["tables"], params)
            for schema, table, column, typ, not_null, default, identity, generated in cur.fetchall():
                entry = snapshot["tables"].setdefault("%s.%s" % (schema, table), {"columns": {}})
                if column is not None:
                    entry["columns"][column] = {"type": typ, "not_null": bool(not_null), "default": default,
                                                "identity": identity or None, "generated": generated or None}
            cur.execute(queries["indexes"], params)
            for schema, name, table, unique, primary, definition in cur.fetchall():
                snapshot["indexes"]["%s.%s" % (schema, name)] = {"table": "%s.%s" % (schema, table), "unique": bool(unique),
                                                                 "primary": bool(primary), "definition": definition}
            cur.execute(queries["constraints"], params)
            for schema, table, name, contype, definition in cur.fetchall():
                snapshot["constraints"]["%s.%s.%s" % (schema, table, name)] = {"type": contype, "definition": definition}
            cur.execute(queries["enums"])
            for schema, name, label in cur.fetchall():
                snapshot["enums"].setdefault("%s.%s" % (schema, name), []).append(label)
            cur.execute(queries["extensions"])
            for name, schema in cur.fetchall():
                snapshot["extensions"][name] = {"schema": schema}
            cur.execute(queries["views"])
            for schema, name, materialized, definition in cur.fetchall():
                snapshot["views"]["%s.%s" % (schema, name)] = {"materialized": bool(materialized), "definition": definition}
            cur.execute(queries["sequences"])
            for schema, name, typ, owned_by in cur.fetchall():
                snapshot["sequences"]["%s.%s" % (schema, name)] = {"type": typ, "owned_by": owned_by}
            cur.execute(queries["functions"])
            for schema, name, args, kind, returns, definition in cur.fetchall():
                snapshot["functions"]["%s.%s(%s)" % (schema, name, args)] = {
                    "kind": kind, "returns": returns, "definition_md5": definition}
            cur.execute(queries["triggers"], params)
            for schema, table, name, definition in cur.fetchall():
                snapshot["triggers"]["%s.%s.%s" % (schema, table, name)] = {"definition": definition}
        finally:
            cur.execute("SELECT set_config('search_path', %s, false)", (saved_path,))
    return snapshot


def flatten(snapshot: dict) -> dict:
    """One entry per comparable object: (section, name) -> value. Columns are their own entries."""
    flat: dict = {}
    for schema in snapshot.get("schemas", ()):
        flat[("schema", schema)] = True
    for table, entry in snapshot.get("tables", {}).items():
        flat[("table", table)] = True
        for column, attrs in entry["columns"].items():
            flat[("column", "%s.%s" % (table, column))] = attrs
    for section in ("indexes", "constraints", "extensions", "views", "sequences", "functions", "triggers"):
        word = section[:-1] if section != "indexes" else "index"
        for name, value in snapshot.get(section, {}).items():
            flat[(word, name)] = value
    for name, labels in snapshot.get("enums", {}).items():
        flat[("enum", name)] = list(labels)
    return flat


def compare_snapshots(expected: dict, actual: dict, limit: int | None = None) -> list:
    """What differs between two snapshots, as a list of
    {"kind", "name", "difference": missing|unexpected|changed, "expected", "actual"}.

    "missing" is in expected only, "unexpected" in actual only. Sorted, so equal inputs give equal output.
    """
    left, right = flatten(expected), flatten(actual)
    differences = []
    for key in sorted(set(left) | set(right)):
        kind, name = key
        if key not in right:
            differences.append({"kind": kind, "name": name, "difference": "missing", "expected": left[key], "actual": None})
        elif key not in left:
            differences.append({"kind": kind, "name": name, "difference": "unexpected", "expected": None, "actual": right[key]})
        elif left[key] != right[key]:
            differences.append({"kind": kind, "name": name, "difference": "changed", "expected": left[key], "actual": right[key]})
    # A missing table also misses its columns; report the table alone so the list stays readable.
    gone = {(d["difference"], d["name"]) for d in differences if d["kind"] == "table"}
    differences = [d for d in differences
                   if not (d["kind"] == "column" and (d["difference"], d["name"].rsplit(".", 1)[0]) in gone)]
    if limit is not None:
        return differences[:limit]
    return differences


def is_empty(snapshot: dict) -> bool:
    """No user object at all (an empty public schema is allowed)."""
    return (not any(snapshot.get(section) for section in SECTIONS if section != "schemas")
            and set(snapshot.get("schemas", ())) <= {"public"})
