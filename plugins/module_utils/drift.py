# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The drift check of one host, read-only: history drift, schema drift, operations.

Plain Python (no Ansible imports) so unit tests call it directly. It reuses what already exists:
the history model (history.build_report), Prisma's lock (advisory_lock.lock_status), the schema
snapshot and comparison (schema_snapshot), the shadow replay of the evidence work
(replay.shadow_replay, here of the WHOLE folder) and pg_backup's manifests (backup.list_backups).

Nothing here takes pg_advisory_lock(72707369): the drift check must never queue behind, or block,
a running `prisma migrate deploy`. The inspected database is only read, in a read-only session.
"""

from __future__ import annotations

import datetime

from ansible_collections.prisma_ops.migrate.plugins.module_utils.advisory_lock import lock_status
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

# Every kind of finding, in report order. drift_check_fail_on names these.
HISTORY_KINDS = ("history_relation", "provider_mismatch", "failed", "pending", "modified", "missing_locally",
                 "rolled_back", "baseline_needed", "missing_scripts")
SCHEMA_KINDS = ("schema", "schema_not_checked")
OPERATIONS_KINDS = ("lock", "backup")
ERROR_KINDS = ("error", "unreachable")
KINDS = HISTORY_KINDS + SCHEMA_KINDS + OPERATIONS_KINDS + ERROR_KINDS
CHECKS = ("history", "schema", "operations")
REPLAY_SCOPES = ("all", "applied")
DIFFERENCE_LIMIT = 500

_KIND_TEXT = {
    "failed": "failed (deploy blocked, P3009)",
    "pending": "pending",
    "modified": "edited after apply",
    "missing_locally": "applied but missing on disk",
    "rolled_back": "rolled back, deploy re-runs it",
    "missing_scripts": "no migration.sql (deploy fails with P3015)",
}


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _parse_time(text) -> datetime.datetime | None:
    if not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def validate_kinds(kinds, option: str = "fail_on") -> list:
    """The list of kinds, or one clear error naming the unknown ones and the valid ones."""
    if kinds is None:
        return []
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise PrismaOpsError("%s: unknown kind%s %s; valid kinds are %s" % (
            option, "s" if len(unknown) > 1 else "", ", ".join(repr(k) for k in unknown), ", ".join(KINDS)))
    return list(dict.fromkeys(kinds))


# ---------------------------------------------------------------- history


def history_findings(report: dict) -> list:
    """Findings from a history.build_report() result (with the migrations folder)."""
    findings = []
    if report.get("table_finding"):
        # Deploy cannot use it (history.relation_finding): blocked like a failed migration.
        findings.append({"kind": "history_relation", "object": report.get("table_kind"),
                         "detail": report["table_finding"]})
    provider = report.get("provider_finding")
    if provider:
        # P3019: deploy refuses the whole folder (history.provider_finding says why and what to do).
        findings.append({"kind": "provider_mismatch", "object": provider["lock_provider"], "detail": provider["message"]})
    if report.get("baseline_needed"):
        findings.append({"kind": "baseline_needed", "object": None,
                         "detail": "the schema has tables but no _prisma_migrations table: deploy refuses with P3005"})
    lists = {"failed": report.get("failed_migrations") or [], "pending": report.get("pending") or [],
             "modified": report.get("modified") or [], "missing_locally": report.get("missing_locally") or [],
             "rolled_back": [n for n in report.get("rolled_back") or [] if n in (report.get("will_deploy") or [])],
             "missing_scripts": report.get("missing_scripts") or []}
    errors = {f["name"]: f.get("error") for f in report.get("failures") or []}
    for kind in HISTORY_KINDS:
        for name in lists.get(kind, ()):
            detail = "%s: %s" % (name, _KIND_TEXT[kind])
            error = errors.get(name) if kind == "failed" else None
            if error and error.get("message"):
                detail += ": %s%s" % (error["message"], " (SQLSTATE %s)" % error["sqlstate"] if error.get("sqlstate") else "")
            findings.append({"kind": kind, "object": name, "detail": detail})
    return findings


# ---------------------------------------------------------------- schema


def _attr_changes(expected: dict, actual: dict) -> list:
    words = {"type": "type", "not_null": "nullability", "default": "default", "identity": "identity",
             "generated": "generated"}
    changes = []
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) != actual.get(key):
            if key == "not_null":
                changes.append("nullability %s -> %s" % ("NOT NULL" if expected.get(key) else "NULL",
                                                         "NOT NULL" if actual.get(key) else "NULL"))
            else:
                changes.append("%s %s -> %s" % (words.get(key, key), _shown(expected.get(key)), _shown(actual.get(key))))
    return changes


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict):
        return value.get("definition") or repr(value)
    return str(value)


def _plural(word: str, count: int) -> str:
    if count == 1:
        return word
    return "indexes" if word == "index" else word + "s"


def _owning_table(diff: dict) -> str | None:
    """The "schema.table" an index, constraint or owned sequence belongs to."""
    value = diff["expected"] if diff["difference"] == "missing" else diff["actual"]
    if diff["kind"] == "index" and isinstance(value, dict):
        return value.get("table")
    if diff["kind"] == "constraint":
        return diff["name"].rsplit(".", 1)[0]
    if diff["kind"] == "sequence" and isinstance(value, dict) and value.get("owned_by"):
        return value["owned_by"].rsplit(".", 1)[0]
    return None


def _enum_findings(name: str, expected: list, actual: list) -> list:
    out = []
    for label in expected:
        if label not in actual:
            out.append({"kind": "schema", "object_type": "enum_label", "change": "missing", "object": name,
                        "detail": "enum %s: label %r is in the migrations but not in the live schema" % (name, label)})
    for label in actual:
        if label not in expected:
            out.append({"kind": "schema", "object_type": "enum_label", "change": "extra", "object": name,
                        "detail": "enum %s: label %r is in the live schema but not in the migrations" % (name, label)})
    if not out:
        out.append({"kind": "schema", "object_type": "enum_label", "change": "changed", "object": name,
                    "detail": "enum %s: labels in another order (%s; the migrations say %s)" % (
                        name, ", ".join(actual), ", ".join(expected))})
    return out


def describe_differences(differences: list) -> list:
    """schema_snapshot.compare_snapshots() output (expected = the replay, actual = the live schema) as findings
    {kind: schema, object_type, change: extra|missing|changed, object, detail}: extra means only in the live
    schema (made by hand), missing only in the replay (never applied, or dropped by hand)."""
    out = []
    # Indexes, constraints and sequences of a table that is missing or extra as a whole go with the table's finding.
    whole = {(d["difference"], d["name"]): [] for d in differences if d["kind"] == "table"}
    kept = []
    for diff in differences:
        owner = _owning_table(diff)
        if owner and (diff["difference"], owner) in whole:
            whole[(diff["difference"], owner)].append(diff["kind"])
        else:
            kept.append(diff)
    for diff in kept:
        object_type, name = diff["kind"], diff["name"]
        if object_type == "enum" and diff["difference"] == "changed":
            out += _enum_findings(name, list(diff["expected"] or []), list(diff["actual"] or []))
            continue
        if diff["difference"] == "unexpected":
            change, detail = "extra", "%s %s is in the live schema but not in the migrations" % (object_type, name)
            if object_type == "column":
                detail += " (%s)" % _shown((diff["actual"] or {}).get("type"))
        elif diff["difference"] == "missing":
            change, detail = "missing", "%s %s is in the migrations but not in the live schema" % (object_type, name)
        elif object_type == "column" and isinstance(diff["expected"], dict) and isinstance(diff["actual"], dict):
            change, detail = "changed", "column %s: %s" % (name, "; ".join(_attr_changes(diff["expected"], diff["actual"])))
        else:
            change, detail = "changed", "%s %s: %s, expected %s" % (object_type, name, _shown(diff["actual"]),
                                                                    _shown(diff["expected"]))
        parts = whole.get((diff["difference"], name)) if object_type == "table" else None
        if parts:
            detail += " (with its %s)" % ", ".join("%d %s" % (parts.count(k), _plural(k, parts.count(k)))
                                                   for k in sorted(set(parts)))
        out.append({"kind": "schema", "object_type": object_type, "change": change, "object": name, "detail": detail})
    return out


def replay_scripts(local, report: dict, scope: str) -> tuple:
    """([(name, script)], None) in deploy order, or (None, reason) when the folder cannot be replayed."""
    if scope not in REPLAY_SCOPES:
        raise PrismaOpsError("replay must be one of %s, not %r" % (", ".join(REPLAY_SCOPES), scope))
    states = {m["name"]: m["state"] for m in report.get("migrations", ())}
    scripts = []
    for migration in local.migrations:
        if scope == "applied" and states.get(migration.name) not in ("applied", "modified"):
            continue
        if migration.script is None:
            return None, "migration %s has no readable migration.sql, so the folder cannot be replayed" % migration.name
        scripts.append((migration.name, migration.script))
    return scripts, None


def schema_drift(conn, spec, local, report: dict, scope: str = "all", shadow_url: str | None = None,
                 limit: int = DIFFERENCE_LIMIT, replay_input: dict | None = None) -> dict:
    """The live schema against a shadow replay of the migrations folder.

    {checked, reason, database, replayed, differences (findings), count}. Never a silent pass: when no scratch
    database is reachable, or the replay fails, checked is false and reason says why.
    replay_input: a dict to fill, when no scratch database is reachable here, with what a replay on the controller
    needs (the live snapshot, the scripts' names and digests, their texts); see complete_schema_check.
    """
    # Imported here: the replay needs pglast, the history and operations checks do not.
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import script_digest
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import shadow_replay
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import take_snapshot
    result = {"checked": False, "reason": None, "database": None, "scope": scope, "replayed": 0,
              "differences": [], "count": 0, "truncated": False}
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import require_pglast
    try:
        require_pglast()  # the replay parses each script (CONCURRENTLY runs statement by statement)
    except PrismaOpsError as exc:
        result["reason"] = exc.msg
        return result
    scripts, reason = replay_scripts(local, report, scope)
    if scripts is None:
        result["reason"] = reason
        return result
    # All scripts as the "prior" part and an empty last one: shadow_replay's "before" is then the whole replay.
    replay = shadow_replay(conn, spec, scripts, "", shadow_url)
    result["database"] = replay.database
    if replay.before is None:
        result["reason"] = ("no scratch database: %s" % replay.message) if replay.status == "unavailable" else \
            "the replay failed: %s" % replay.message
        if replay_input is not None and replay.status == "unavailable":
            replay_input.update(live_snapshot=take_snapshot(conn), migrations={"folder": {
                "scripts": [[n, script_digest(t)] for n, t in scripts + [("", "")]]}},
                texts=dict((script_digest(t), t) for _n, t in scripts + [("", "")]))
        return result
    schema_differences(result, replay, take_snapshot(conn), len(scripts), limit)
    return result


def schema_differences(result: dict, replay, live: dict, replayed: int, limit: int = DIFFERENCE_LIMIT) -> dict:
    """Fill a schema check result from a replay of the whole folder (its "before") and the live snapshot."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import compare_snapshots
    result["database"] = replay.database
    if replay.before is None:
        result.update(checked=False, reason="the replay failed: %s" % replay.message)
        return result
    found = describe_differences(compare_snapshots(replay.before, live))
    result.update(checked=True, reason=None, replayed=replayed, count=len(found), differences=found[:limit],
                  truncated=len(found) > limit)
    return result


def schema_section(schema: dict) -> list:
    """Turn schema_drift's result into the check's section (status, findings) in place; returns the findings."""
    if schema["checked"]:
        found = schema.pop("differences")
    else:
        schema.pop("differences", None)
        found = [{"kind": "schema_not_checked", "object": None, "detail": "schema drift not checked: %s" % schema["reason"]}]
    schema["status"] = "drift" if schema["checked"] and found else ("ok" if schema["checked"] else "not_checked")
    schema["findings"] = found
    return found


def complete_schema_check(result: dict, replay, live: dict, replayed: int, fail_on) -> dict:
    """A host's drift result whose schema check could not run there, completed by a replay done on the controller:
    the schema section, the findings, the verdict and the summary, as run_check would have made them."""
    schema = result["checks"]["schema"]
    stale = schema["findings"]
    schema_differences(schema, replay, live, replayed)
    found = schema_section(schema)
    result["findings"] = [f for f in result["findings"] if f not in stale] + found
    result.update(host_verdict(result["findings"], validate_kinds(list(fail_on))))
    result["summary"] = summarize(result["findings"], schema)
    return result


# ---------------------------------------------------------------- operations


def lock_finding(conn, max_age: int | None, now: datetime.datetime) -> tuple:
    """(lock dict, finding or None). Read from pg_locks only: the lock itself is never taken."""
    holder, waiters = lock_status(conn)
    lock = {"held": holder is not None, "holder": None, "age_seconds": None, "waiters": len(waiters)}
    if holder is None:
        return lock, None
    # Prisma takes the lock right after it connects, so the session start is when it was taken (or just before).
    since = _parse_time(holder.get("session_started_at"))
    age = max(0, int((now - since).total_seconds())) if since else None
    lock.update(holder={k: holder.get(k) for k in ("pid", "application_name", "user", "client_addr",
                                                   "session_started_at", "state")}, age_seconds=age)
    if max_age is not None and (age is None or age >= max_age):
        return lock, {"kind": "lock", "object": "pid %s" % holder["pid"],
                      "detail": "Prisma's advisory lock held for %s by pid %s (%s)%s: a stuck session blocks every "
                                "deploy" % (format_age(age), holder["pid"], holder.get("application_name") or "no name",
                                            ", %d waiting" % len(waiters) if waiters else "")}
    return lock, None


def backup_status(backup_dir: str | None, prefix: str, database: str, max_age: int | None,
                  now: datetime.datetime) -> tuple:
    """(backup dict, finding or None) from pg_backup's manifests: the newest verified backup and its age."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.backup import list_backups
    if not backup_dir:
        return {"checked": False, "reason": "no backup_dir given", "path": None, "finished_at": None,
                "age_seconds": None}, None
    verified = [b for b in list_backups(backup_dir, prefix, database) if b["manifest"].get("verified")]
    info = {"checked": True, "reason": None, "dir": backup_dir, "path": None, "finished_at": None, "age_seconds": None,
            "count": len(verified)}
    if not verified:
        return info, {"kind": "backup", "object": backup_dir,
                      "detail": "no verified pg_backup backup of %s (prefix %s) in %s" % (database, prefix, backup_dir)}
    newest = verified[0]
    age = max(0, int((now - newest["finished_at"]).total_seconds()))
    info.update(path=newest["path"], finished_at=newest["finished_at"].isoformat(), age_seconds=age,
                size=newest["manifest"].get("size"))
    if max_age is not None and age > max_age:
        return info, {"kind": "backup", "object": newest["name"],
                      "detail": "the newest verified backup is %s old (more than %s)" % (format_age(age), format_age(max_age))}
    return info, None


def format_age(seconds) -> str:
    """2d 3h, 3h 5m, 5m 10s, 10s: the two largest units."""
    if seconds is None:
        return "an unknown time"
    seconds = int(seconds)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (unit, size) in enumerate(units[:-1]):
        if seconds >= size:
            small_unit, small_size = units[index + 1]
            rest = (seconds % size) // small_size
            return "%d%s" % (seconds // size, unit) + (" %d%s" % (rest, small_unit) if rest else "")
    return "%ds" % seconds


# ---------------------------------------------------------------- the host's verdict


def check_status(findings: list, not_checked: bool = False) -> str:
    if findings:
        return "drift"
    return "not_checked" if not_checked else "ok"


def summarize(findings: list, schema: dict | None) -> str:
    if not findings:
        return "no drift"
    counts: dict = {}
    for f in findings:
        counts[f["kind"]] = counts.get(f["kind"], 0) + 1
    parts = []
    for kind in KINDS:
        if kind in counts:
            if kind == "schema_not_checked":
                parts.append("schema drift not checked (%s)" % ((schema or {}).get("reason") or "unknown reason"))
            elif kind == "schema":
                parts.append("%d schema difference%s" % (counts[kind], "s" if counts[kind] != 1 else ""))
            else:
                parts.append("%s: %d" % (kind, counts[kind]))
    return "; ".join(parts)


def host_verdict(findings: list, fail_on: list) -> dict:
    kinds = [k for k in KINDS if any(f["kind"] == k for f in findings)]
    failing = [k for k in kinds if k in fail_on]
    return {"kinds": kinds, "failing_kinds": failing, "fail": bool(failing)}


def run_check(conn, spec, local, checks=CHECKS, scope: str = "all", shadow_url: str | None = None,
              lock_max_age: int | None = None, backup_dir: str | None = None, backup_prefix: str = "prisma",
              backup_max_age: int | None = None, fail_on=(), now: datetime.datetime | None = None,
              replay_input: dict | None = None) -> dict:
    """The whole drift check of one host on an open (read-only) connection to its database."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import build_report, read_history
    now = now or utcnow()
    fail_on = validate_kinds(list(fail_on))
    report = build_report(read_history(conn, spec.schema), local)
    result: dict = {"checked_at": now.isoformat(), "checks": {}, "findings": []}
    if "history" in checks:
        found = history_findings(report)
        result["checks"]["history"] = {
            "status": check_status(found), "summary": report["summary"], "deploy_blocked": report["deploy_blocked"],
            "in_sync": report["in_sync"], "baseline_needed": report["baseline_needed"], "table_exists": report["table_exists"],
            "counts": report["counts"], "provider_finding": report["provider_finding"],
            "failed": report["failed_migrations"], "pending": report["pending"],
            "modified": report["modified"], "missing_locally": report["missing_locally"],
            "rolled_back": report["rolled_back"], "will_deploy": report["will_deploy"], "findings": found}
        result["findings"] += found
    if "schema" in checks:
        schema = schema_drift(conn, spec, local, report, scope, shadow_url, replay_input=replay_input)
        found = schema_section(schema)
        result["checks"]["schema"] = schema
        result["findings"] += found
    if "operations" in checks:
        lock, lock_found = lock_finding(conn, lock_max_age, now)
        backup, backup_found = backup_status(backup_dir, backup_prefix, spec.dbname or "", backup_max_age, now)
        found = [f for f in (lock_found, backup_found) if f]
        result["checks"]["operations"] = {"status": check_status(found), "lock": lock, "backup": backup,
                                          "findings": found}
        result["findings"] += found
    result.update(host_verdict(result["findings"], fail_on))
    result["summary"] = summarize(result["findings"], result["checks"].get("schema"))
    return result
