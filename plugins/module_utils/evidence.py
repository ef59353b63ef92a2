# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence for a failed migration: what did its migration.sql really do to the live schema?

Two independent methods (see DESIGN.md, "Evidence"): statement probes (effects.py, probes.py) and
the shadow replay (replay.py). When both judge they must agree, or the verdict is unknown.
"""

from __future__ import annotations

import hashlib

from ansible_collections.prisma_ops.migrate.plugins.module_utils.probes import decide, judge_statements, ranges, unplaced
from ansible_collections.prisma_ops.migrate.plugins.module_utils.baseline import (
    BASELINE_KEY, baseline_unavailable, judge_baseline,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import (
    ShadowResult, compare_with_live, prefix_snapshots, shadow_replay,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import flatten, take_snapshot
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import SqlParseError, parse_script, require_pglast

VERDICTS = ("applied", "not_applied", "partial", "unknown")
ACTIONS = {"applied": "resolve_applied", "not_applied": "resolve_rolled_back", "partial": "stop", "unknown": "stop"}

_AGREES = {"applied": "matches_after", "not_applied": "matches_before", "partial": "differs"}


def combine(probe_verdict: str, probe_reason: str, shadow: ShadowResult | None, judged: list = (),
            live: dict | None = None, error: dict | None = None) -> tuple:
    """The final (verdict, reason): both methods must agree when both could judge; the replay decides alone only
    where the probes could not tell and every statement they could not tell has an effect a snapshot shows."""
    if shadow is None or shadow.status not in ("matches_after", "matches_before", "differs"):
        return probe_verdict, probe_reason
    status = shadow.status.replace("_", " ")
    if probe_verdict != "unknown":
        if _AGREES[probe_verdict] == shadow.status:
            return probe_verdict, "%s; the shadow replay agrees (%s)" % (probe_reason, status)
        return "unknown", "statement probes say %s (%s) but the shadow replay says %s: the two methods disagree" % (
            probe_verdict.replace("_", " "), probe_reason, status)
    # Only the statements the prefix rule cannot place matter: one before a present statement ran, one after an
    # absent statement did not. A snapshot can place the others only when it shows their whole effect.
    open_indexes = set(unplaced(judged, error))
    blind = [e["index"] for e in judged if e["index"] in open_indexes and e.get("_blind")]
    if blind:
        return "unknown", ("%s; the shadow replay says %s, but statement%s %s change%s what a schema snapshot cannot "
                           "show (rows, an opaque block, or an object without a probe)"
                           % (probe_reason, status, "s" if len(blind) > 1 else "", ranges(blind),
                              "" if len(blind) > 1 else "s"))
    told = "the statements the probes cannot place (%s) only change the schema" % ranges(sorted(open_indexes))
    if shadow.status == "matches_after":
        return "applied", "%s, and the live schema is exactly what a clean apply of migrations 1..N leaves" % told
    if shadow.status == "matches_before":
        return "not_applied", "%s, and the live schema is exactly what migrations 1..N-1 leave" % told
    done, missing = between(shadow.before, shadow.after, live)
    if not done or not missing:
        return "unknown", ("%s; the live schema matches neither replay and differs from both in objects this migration "
                           "does not change as it does (drift, or changes by hand)" % probe_reason)
    return "partial", ("%s; every object this migration changes is either as before it (%s) or as after it (%s), "
                       "nothing else differs" % (told, _names(missing), _names(done)))


def between(before: dict | None, after: dict | None, live: dict | None) -> tuple:
    """(objects as after, objects as before) when every object of the live schema is as one of the two replays left
    it: with some of each, the live schema is the migration half done. ([], []) when some object is neither."""
    if before is None or after is None or live is None:
        return [], []
    left, right, now = flatten(before), flatten(after), flatten(live)
    absent = object()
    done, missing = [], []
    for key in sorted(set(left) | set(right) | set(now)):
        was, will, value = left.get(key, absent), right.get(key, absent), now.get(key, absent)
        if was == will:
            if value != was:
                return [], []  # changed where the migration changes nothing
        elif value == will:
            done.append(key)
        elif value == was:
            missing.append(key)
        else:
            return [], []
    return done, missing


def _names(keys: list, shown: int = 5) -> str:
    text = ", ".join("%s %s" % key for key in keys[:shown])
    return text + (", ..." if len(keys) > shown else "")


# ---------------------------------------------------------------- one failed migration, and all of them


def migration_evidence(name: str, script: str | None, prior: list, live_conn, spec, live_snapshot: dict,
                       error: dict | None = None, shadow: bool = True, shadow_url: str | None = None) -> dict:
    """The evidence entry of one failed migration, replayed in the host's scratch database when asked and possible."""
    replay = None
    if shadow and script is not None:
        try:
            parse_script(script)
        except SqlParseError:
            shadow = False  # judge_migration says why
        else:
            replay = shadow_replay(live_conn, spec, prior, script, shadow_url)
    return judge_migration(name, script, live_snapshot, spec.schema, error, replay)


def judge_migration(name: str, script: str | None, live_snapshot: dict, schema: str, error: dict | None = None,
                    replay: ShadowResult | None = None) -> dict:
    """The evidence entry from the probes and a replay done wherever one could be (host or controller).

    Pure: the live schema comes as a snapshot, so the controller can judge again once it has replayed.
    """
    if script is None:
        return {"verdict": "unknown", "recommended_action": ACTIONS["unknown"], "statements": [], "shadow": None,
                "reason": "no local migration.sql for %s: nothing to compare the database with" % name}
    try:
        parsed = parse_script(script)
    except SqlParseError as exc:
        return {"verdict": "unknown", "recommended_action": ACTIONS["unknown"], "statements": [], "shadow": None,
                "reason": exc.msg}
    if replay is not None:
        replay = compare_with_live(replay, live_snapshot)
    before = replay.before if replay is not None else None
    judged = judge_statements(parsed, schema, live_snapshot, before)
    probe_verdict, probe_reason = decide(judged, error)
    verdict, reason = combine(probe_verdict, probe_reason, replay, judged, live_snapshot, error)
    for entry in judged:
        entry.pop("_status", None)
        entry.pop("_blind", None)
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


def collect_evidence(conn, spec, local, report: dict, shadow: bool = True, shadow_url: str | None = None,
                     replay_input: dict | None = None) -> dict:
    """Evidence for every failed migration of a build_report() result, keyed by name.

    replay_input: a dict to fill with what a replay elsewhere (the controller) needs for each failed migration whose
    replay could not run here: the live snapshot, and the migrations 1..N as names and sha256 of their text.
    """
    require_pglast()
    failed = report.get("failed_migrations") or []
    if not failed:
        return {}
    live_snapshot = take_snapshot(conn)
    entries = {m["name"]: m for m in report.get("migrations", ())}
    evidence = {}
    for name in failed:
        migration = local.get(name) if local is not None else None
        prior = prior_scripts(local, name) if migration is not None else []
        error = (entries.get(name) or {}).get("error")
        use_shadow = shadow and prior is not None and migration is not None
        evidence[name] = migration_evidence(name, migration.script if migration else None, prior or [], conn, spec,
                                            live_snapshot, error, use_shadow, shadow_url)
        if replay_input is not None and use_shadow and (evidence[name].get("shadow") or {}).get("status") == "unavailable":
            one = replay_input_for(prior, name, migration.script, error=error)
            replay_input.setdefault("live_snapshot", live_snapshot)
            replay_input.setdefault("migrations", {}).update(one["migrations"])
            replay_input.setdefault("texts", {}).update(one["texts"])
    return evidence


def collect_baseline(conn, spec, local, report: dict, shadow_url: str | None = None,
                     replay_input: dict | None = None) -> dict | None:
    """The baseline (module_utils/baseline.py) of a database that needs one (P3005), or None when it needs none.

    The folder's migrations replay in one pass in a scratch database of the host's server; when none can be used and
    replay_input is given, it is filled so that the controller replays them (its BASELINE_KEY entry).
    """
    if not report.get("baseline_needed") or local is None:
        return None
    scripts = [(m.name, m.script) for m in local.migrations]
    names = [n for n, _t in scripts]
    if not scripts:
        return baseline_unavailable(names, "error", "the migrations folder holds no migration", None)
    unreadable = [m.name for m in local.migrations if m.script is None]
    if unreadable:
        return baseline_unavailable(names, "error", "no readable migration.sql in %s" % ", ".join(unreadable), None)
    require_pglast()
    live = take_snapshot(conn)
    outcome, where = prefix_snapshots(conn, spec, scripts, shadow_url)
    if not isinstance(outcome, ShadowResult):
        return judge_baseline(names, outcome, live, where)
    if replay_input is not None and outcome.status == "unavailable":
        replay_input.setdefault("live_snapshot", live)
        replay_input[BASELINE_KEY] = {"scripts": [[n, script_digest(t)] for n, t in scripts]}
        replay_input.setdefault("texts", {}).update((script_digest(t), t) for _n, t in scripts)
    return baseline_unavailable(names, outcome.status, outcome.message, outcome.database)


def prior_scripts(local, name: str) -> list | None:
    """[(name, text)] of the migrations before `name` in the folder, or None when one has no readable script
    (deploy would refuse with P3015, and a replay without it means nothing)."""
    prior = []
    for other in local.migrations:
        if other.name == name:
            break
        if other.script is None:
            return None
        prior.append((other.name, other.script))
    return prior


def replay_input_for(prior: list, name: str, script: str, **extra) -> dict:
    """What a replay elsewhere needs of migrations 1..N: their names and digests, and their texts by digest."""
    scripts = prior + [(name, script)]
    return {"migrations": {name: dict(extra, scripts=[[n, script_digest(t)] for n, t in scripts])},
            "texts": dict((script_digest(t), t) for _n, t in scripts)}


def script_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
