# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Statement probes: each expected effect of a migration (effects.py) looked up in one catalog snapshot.

Each statement gets present true / false / null; decide() turns them into a verdict, using the fact
that every engine runs statements in file order and stops at the first failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ansible_collections.prisma_ops.migrate.plugins.module_utils.effects import (
    NEUTRAL_KINDS, Definition, Effect, build_model, catalog_definition, normalize_catalog_default,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import flatten

# SQLSTATEs of "already exists": an object made by hand may explain a present statement.
DUPLICATE_SQLSTATES = frozenset(("42P07", "42710", "42701", "42P06", "42723", "42P16"))

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
        wanted, text, literal = effect.expect
        actual = value.get("default")
        if (actual is not None) != wanted:
            return False, True
        if not wanted or text is None:
            return True, True
        if normalize_catalog_default(actual) == text:
            return True, True
        return False, _literal_default_differs(literal, actual)
    if effect.attr == "unique":
        return bool(value.get("unique")) == effect.expect, True
    if effect.attr == "definition":
        table = effect.table if effect.kind == "index" else effect.name
        actual = catalog_definition(effect.kind, table, (value or {}).get("definition"))
        if actual is None or not isinstance(effect.expect, Definition):
            return False, False
        return effect.expect.compare(actual)
    if effect.attr == "labels":
        return list(value) == list(effect.expect), True
    if effect.attr == "position":
        neighbor, after = effect.expect
        labels = list(value or ())
        if neighbor not in labels or effect.sub not in labels:
            return False, False
        return labels.index(effect.sub) == labels.index(neighbor) + (1 if after else -1), True
    return False, False


# A string literal as the catalog prints it for text, varchar and user types (enums): '...'::type.
_QUOTED_LITERAL = re.compile(r"^'(?:[^']|'')*'::(text|character varying(\(\d+\))?|[^'\s]*\.[^'\s]+)$")


def _literal_default_differs(literal: str | None, actual: str) -> bool:
    """Whether a default that compared unequal surely is another value: PostgreSQL prints boolean and
    integer constants one way whatever cast they carry, and a string one way on text-like columns."""
    if literal in ("bool", "int"):
        return True
    return literal == "str" and bool(_QUOTED_LITERAL.match(actual.strip()))


@dataclass
class Finding:
    result: object          # True / False / None
    certain: bool           # False: could not be checked (counts against applied / not_applied)
    text: str


def _attributes(model, effect: Effect) -> list:
    """The attribute expectations that still hold for the effect's object at the end of the migration."""
    return [e for e in model.by_name.get(effect.name, ()) if e.mode == "attr" and e.kind == effect.kind
            and e.sub == effect.sub and e.superseded_by is None]


def _definition_state(model, effect: Effect, value) -> tuple:
    """(every attribute matches, some attribute surely differs) of the object against what the migration leaves."""
    results = [attr_matches(a, value) for a in _attributes(model, effect)]
    return all(m for m, _c in results), any(not m and c for m, c in results)


def probe(effect: Effect, live: dict, before: dict | None, model) -> Finding:
    """The finding of one effect; `model` (effects.Model) gives what else the migration expects of its object."""
    if effect.superseded_by is not None:
        return _probe_superseded(effect, live, before, model)
    finding = _probe_plain(effect, live, before, model)
    # Not found as the whole migration leaves it (or, for a drop, its table is not there under the final name):
    # a later rename may not have run.
    if (finding.result is False or (finding.result is None and effect.mode == "absent")) and (
            effect.aliases or effect.alt_expect):
        earlier = _probe_earlier(effect, live, before, model)
        if earlier is not None:
            return earlier
    return finding


def _probe_earlier(effect: Effect, live: dict, before: dict | None, model) -> Finding | None:
    """A later rename has not run: the effect is there under the earlier name (or the earlier type name).
    A drop whose table is not there under its final name is judged under the earlier name, either way."""
    for name, sub in reversed(effect.aliases):
        found = _probe_plain(replace(effect, name=name, sub=sub, aliases=[], alt_expect=[]), live, before, model)
        earlier = name if sub is None else "%s.%s" % (name, sub)
        if found.result is True:
            return Finding(True, True, "%s: %s under its earlier name %s, so the rename after it did not run" % (
                effect.label(), "present" if effect.mode != "absent" else "absent", earlier))
        if found.result is False and effect.mode == "absent":
            return Finding(False, True, "%s: still there under its earlier name %s" % (effect.label(), earlier))
    for value, proves in effect.alt_expect:
        found = _probe_plain(replace(effect, expect=value, declared=effect.declared or proves, aliases=[], alt_expect=[]),
                             live, before, model)
        if found.result is True:
            return Finding(True, True, "%s: %r, the type's name before a later rename that did not run" % (
                effect.label(), value))
    return None


def _probe_superseded(effect: Effect, live: dict, before: dict | None, model) -> Finding:
    later = effect.superseded_by
    exists, value = lookup(live, effect)
    if (later.mode == "absent" and later.kind in ("table", "column") and later.object_key != effect.object_key
            and lookup(live, later)[0]):
        # DROP CONSTRAINT ...; DROP TABLE ...: while the table (or column) that takes it along is there, the
        # earlier statement speaks for itself.
        found = _probe_plain(effect, live, before, model)
        return Finding(found.result, found.certain, "%s (the %s that statement %d drops, and this with it, is still "
                       "there)" % (found.text, later.kind, later.stmt))
    if effect.mode == "exists" and later.mode == "absent" and later.object_key == effect.object_key and exists:
        return Finding(True, True, "%s: present, so this ran and statement %d did not" % (effect.label(), later.stmt))
    if effect.mode == "absent" and later.mode == "exists" and later.object_key == effect.object_key:
        # Dropped, then made again (Prisma's DROP CONSTRAINT + ADD CONSTRAINT): the definition tells which one is there.
        if not exists:
            return Finding(True, True, "%s: absent, and statement %d that makes it again did not run" % (
                effect.label(), later.stmt))
        matches, differs = _definition_state(model, effect, value)
        if differs:
            return Finding(False, True, "%s: still there with its old definition (not the one statement %d leaves)" % (
                effect.label(), later.stmt))
        if matches and _attributes(model, effect):
            return Finding(None, True, "%s: there with the definition statement %d leaves: consistent with both having run"
                           % (effect.label(), later.stmt))
        return Finding(None, True, "%s: an object of this name is there; statement %d makes it again and its definition "
                       "cannot be compared" % (effect.label(), later.stmt))
    return Finding(None, True, "%s: superseded by statement %d" % (effect.label(), later.stmt))


def _table_of(effect: Effect) -> str | None:
    """The table an effect's object lives in, for columns, constraints, triggers and indexes."""
    if effect.kind in ("column", "constraint", "trigger"):
        return effect.name
    if effect.kind == "index":
        return effect.table
    return None


def _probe_plain(effect: Effect, live: dict, before: dict | None, model) -> Finding:
    exists, value = lookup(live, effect)
    before_exists, before_value = lookup(before, effect) if before is not None else (None, None)
    if effect.mode == "exists":
        if not exists:
            return Finding(False, True, "%s: absent" % effect.label())
        if before is not None and before_exists:
            return Finding(None, True, "%s: present, but also before this migration" % effect.label())
        attributes = _attributes(model, effect)
        if effect.recreated:
            # The migration dropped an object of this name: only the definition tells old from new.
            matches, differs = _definition_state(model, effect, value)
            if differs:
                return Finding(False, True, "%s: an object of this name is there, but not with the definition this "
                               "migration leaves" % effect.label())
            if matches and attributes:
                return Finding(True, True, "%s: present with the definition this migration leaves" % effect.label())
            return Finding(None, True, "%s: an object of this name is there, but the migration dropped one of that name "
                           "and its definition cannot be compared" % effect.label())
        if any(a.stmt == effect.stmt for a in attributes):
            return Finding(None, True, "%s: present by name (its definition decides)" % effect.label())
        if effect.conditional and before is None:
            return Finding(None, True, "%s: present, but the statement is conditional and may have found it there"
                           % effect.label())
        return Finding(True, True, "%s: present" % effect.label())
    if effect.mode == "absent":
        if exists:
            return Finding(False, True, "%s: still there" % effect.label())
        table = _table_of(effect)
        if table is not None and not live.get(("table", table)):
            # Its table is not there under this name (renamed earlier in the file, by a statement that did not run?).
            return Finding(None, True, "%s: absent, but so is its table %s" % (effect.label(), table))
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
    if effect.recreated and before is None:
        return Finding(None, True, "%s: as expected, but the object this migration dropped under that name may have had "
                       "it too" % effect.label())
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
    # An attribute this migration set one way and later another (DROP DEFAULT ... SET DEFAULT): when it has the
    # later value, the later statement ran if the earlier one did, even though the value before the migration is unknown.
    resets: dict = {}
    for effect in model.effects:
        finding = probe(effect, live, before, model)
        by_stmt.setdefault(effect.stmt, []).append(finding)
        earlier = effect.replaces
        if (effect.mode == "attr" and finding.result is None and finding.certain and effect.superseded_by is None
                and earlier is not None and earlier.mode == "attr" and earlier.expect != effect.expect):
            exists, value = lookup(live, effect)
            if exists and attr_matches(effect, value)[0]:
                resets.setdefault(effect.stmt, set()).add(earlier.stmt)
    # An object created then dropped by this migration and absent now: both ran, or neither did.
    undone = {}
    for effect in model.effects:
        later = effect.superseded_by
        if (effect.mode == "exists" and later is not None and later.mode == "absent"
                and later.object_key == effect.object_key and not lookup(live, effect)[0]):
            undone.setdefault(effect.stmt, set()).add(later.stmt)
    # A drop, then the name made again (by CREATE or a rename): when the statement that makes it again did not run,
    # the object of that name is the old one and the drop did not run either.
    remade = {}
    for effect in model.effects:
        later = effect.superseded_by
        if (effect.mode == "absent" and later is not None and later.mode == "exists"
                and later.object_key == effect.object_key and lookup(live, effect)[0]):
            remade.setdefault(effect.stmt, set()).add(later.stmt)
    judged = []
    for statement in parsed.statements:
        entry = statement.as_dict()
        findings = by_stmt.get(statement.index, [])
        results = [f.result for f in findings]
        uncertain = statement.index in unchecked or any(not f.certain for f in findings)
        has_true, has_false = True in results, False in results
        entry["present"] = True if has_true and not has_false else (False if has_false and not has_true else None)
        entry["checked"] = [f.text for f in findings]
        if has_true and has_false:
            entry["_status"] = "mixed"
        elif has_true:
            entry["_status"] = "present"
        elif has_false:
            entry["_status"] = "absent"
        elif uncertain:
            entry["_status"] = "unknown"
        else:
            entry["_status"] = "neutral"
        # Blind: no effect of it was modelled (data, DO blocks, statements without a probe), so a schema snapshot
        # cannot show whether it ran either (evidence.combine).
        entry["_blind"] = statement.index in unchecked
        if statement.index in unchecked:
            entry["checked"].append("cannot tell: " + unchecked[statement.index])
        elif is_neutral(entry):
            entry["checked"].append("no lasting effect on the schema (transaction control, session setting or a "
                                    "SELECT that writes nothing)")
        if entry["_status"] == "mixed":
            entry["checked"].append("some effects present, some absent: neither applied nor untouched")
        judged.append(entry)
    _settle_remade(judged, remade)
    _settle_undone(judged, undone, resets)
    return judged


def _settle_remade(judged: list, remade: dict) -> None:
    by_index = {entry["index"]: entry for entry in judged}
    for index, makers in remade.items():
        entry = by_index[index]
        if entry["_status"] == "neutral" and all(by_index[m]["_status"] == "absent" for m in makers):
            entry["_status"], entry["present"] = "absent", False
            entry["checked"].append("not run: what it drops is there, and statement%s %s that would make it again did "
                                    "not run, so that is the old one"
                                    % ("s" if len(makers) > 1 else "", ", ".join(str(m) for m in sorted(makers))))


def _settle_undone(judged: list, undone: dict, resets: dict | None = None) -> None:
    """An object this migration creates and drops again is absent now: both statements ran, or neither.
    What ran is a prefix of the file, so an absent statement before the drop means neither ran, and a
    present statement after the creator means the creator ran, and so did the (one) drop."""
    by_index = {entry["index"]: entry for entry in judged}
    changed = True
    while changed:
        changed = False
        absent = [e["index"] for e in judged if e["_status"] in ("absent", "mixed")]
        present = [e["index"] for e in judged if e["_status"] in ("present", "mixed")]
        for index, drops in undone.items():
            entry = by_index[index]
            if absent and entry["_status"] == "neutral" and all(d > min(absent) for d in drops):
                entry["_status"], entry["present"] = "absent", False
                entry["checked"].append("not run: what it created is absent and the statement%s that would drop it "
                                        "(%s) come%s after absent statement %d" % (
                                            "s" if len(drops) > 1 else "", ", ".join(str(d) for d in sorted(drops)),
                                            "" if len(drops) > 1 else "s", min(absent)))
                changed = True
            elif present and index < max(present) and len(drops) == 1:
                drop = by_index[next(iter(drops))]
                # Only needed after the last present statement: before it, the prefix rule takes it as run anyway.
                if drop["_status"] == "neutral" and drop["index"] > max(present) and not absent:
                    drop["_status"], drop["present"] = "present", True
                    drop["checked"].append("ran: statement %d that created what it drops ran (statement %d after it is "
                                           "present), and that is gone now" % (index, max(present)))
                    changed = True
        for index, earlier in (resets or {}).items():
            entry = by_index[index]
            if (present and not absent and entry["_status"] == "neutral" and index > max(present)
                    and all(e < max(present) for e in earlier)):
                entry["_status"], entry["present"] = "present", True
                entry["checked"].append("ran: statement%s %s set it otherwise earlier in this migration and ran "
                                        "(statement %d is present), so the value now is this statement's" % (
                                            "s" if len(earlier) > 1 else "", ", ".join(str(e) for e in sorted(earlier)),
                                            max(present)))
                changed = True


def is_neutral(entry: dict) -> bool:
    """The verdict rule's neutral list: statements with no lasting effect on the schema. Any other statement
    without a present or absent finding cannot be told, even when its probes found nothing against it."""
    return entry["kind"] in NEUTRAL_KINDS or (entry["kind"] == "select" and entry["_status"] == "neutral")


def ranges(indexes: list) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    runs: list = []
    for i in indexes:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else "%s-%s" % (a, b) for a, b in runs)


def untold(judged: list) -> list:
    """The indexes of the statements the probes cannot tell. "neutral" also marks statements consistent with having
    run or not (IF NOT EXISTS found its object, a superseded drop): they count here. Only is_neutral() is neutral."""
    return [s["index"] for s in judged if s["_status"] == "unknown" or (s["_status"] == "neutral" and not is_neutral(s))]


def unplaced(judged: list, error: dict | None = None) -> list:
    """The untold statements the prefix rule (decide) cannot place: none present after them, none absent before.
    After a failure on an object that already existed (made by hand?), the rule places none of them."""
    if error and error.get("sqlstate") in DUPLICATE_SQLSTATES:
        return untold(judged)
    present = [s["index"] for s in judged if s["_status"] in ("present", "mixed")]
    absent = [s["index"] for s in judged if s["_status"] in ("absent", "mixed")]
    return [i for i in untold(judged)
            if not (present and i < max(present)) and not (absent and i > min(absent))]


def decide(judged: list, error: dict | None = None) -> tuple:
    """(verdict, reason) from the judged statements.

    Every engine runs statements in order and stops at the first failure, so what ran is a prefix
    of the file: a statement that cannot be checked is taken as run when a later one is present,
    and as not run when an earlier one is absent. Anything else leaves the verdict unknown.
    """
    present = [s["index"] for s in judged if s["_status"] in ("present", "mixed")]
    absent = [s["index"] for s in judged if s["_status"] in ("absent", "mixed")]
    unknown = untold(judged)
    mixed = [s["index"] for s in judged if s["_status"] == "mixed"]
    hand_made = bool(error and error.get("sqlstate") in DUPLICATE_SQLSTATES)
    if present and absent:
        reason = "statements %s present, %s absent" % (ranges(sorted(set(present) - set(mixed))) or "none",
                                                       ranges(sorted(set(absent) - set(mixed))) or "none")
        if mixed:
            reason += ", %s half present" % ranges(mixed)
        if unknown:
            reason += ", %s cannot be checked" % ranges(unknown)
        return "partial", reason
    if present:
        trailing = [i for i in unknown if i > max(present)]
        if trailing:
            return "unknown", ("every checkable statement is present, but statement%s %s after the last of them cannot be "
                               "checked: the failure may have been there" % ("s" if len(trailing) > 1 else "", ranges(trailing)))
        if unknown and hand_made:
            return "unknown", ("every checkable statement is present, but the migration failed on an object that already "
                               "existed (made by hand?), so statements %s that cannot be checked may never have run"
                               % ranges(unknown))
        return "applied", "all %d checkable statement%s present%s" % (
            len(present), "s" if len(present) != 1 else "",
            (" (statements %s cannot be checked but ran before present ones)" % ranges(unknown)) if unknown else "")
    if absent:
        leading = [i for i in unknown if i < min(absent)]
        if leading:
            return "unknown", ("no checkable statement is present, but statement%s %s before the first of them cannot be "
                               "checked and may have committed on its own" % ("s" if len(leading) > 1 else "", ranges(leading)))
        return "not_applied", "none of the %d checkable statement%s present" % (len(absent), "s" if len(absent) != 1 else "")
    if unknown:
        return "unknown", "no statement can be checked in the catalogs (statements %s: data changes or opaque blocks)" % ranges(unknown)
    return "unknown", "the migration has no effect that the catalogs can show"
