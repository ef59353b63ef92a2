# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Baselining from evidence (P3005: the schema has tables but no _prisma_migrations).

Prisma's documented baselining marks the migrations whose effect the database already has as applied
(`prisma migrate resolve --applied` for each), so deploy runs only the later ones. Which ones they are is decided here
from a replay, never guessed: the folder's migrations are replayed in one pass in a scratch database and the live
schema is compared with the snapshot after each prefix 1..k. Exactly one prefix equal to the live schema is a proven
baseline; none, or several (a migration that changes no schema object makes two prefixes look alike: whether it ran
cannot be seen), is not, and says why.
"""

from __future__ import annotations

from ansible_collections.prisma_ops.migrate.plugins.module_utils.schema_snapshot import compare_snapshots

SHOWN_DIFFERENCES = 10
# The key a baseline request travels under in replay_input, beside the failed migrations' names.
BASELINE_KEY = "baseline"


def judge_baseline(names: list, snapshots: list, live: dict, where: str | None) -> dict:
    """The baseline result from the snapshots after 0..N migrations (of `names`, in folder order) and the live one."""
    result = {"status": None, "prefix": [], "pending": list(names), "database": where, "reason": None,
              "differences": []}
    differences = [compare_snapshots(snapshot, live) for snapshot in snapshots]
    matches = [k for k, found in enumerate(differences) if not found and k > 0]
    if len(matches) == 1:
        k = matches[0]
        result.update(status="proven", prefix=list(names[:k]), pending=list(names[k:]), reason=(
            "the live schema is exactly what migrations 1..%d leave (%s): marking them applied is Prisma's baselining, "
            "and deploy then applies the %d after it" % (k, names[k - 1], len(names) - k)))
        return result
    if matches:
        result.update(status="ambiguous", reason=(
            "the live schema is exactly what %s leave: the migrations between change no schema object, so whether "
            "they ran on this database cannot be seen; baseline by hand (prisma migrate resolve --applied for each "
            "one that ran)" % " and ".join("migrations 1..%d (%s)" % (k, names[k - 1]) for k in matches)))
        return result
    closest = min(range(1, len(snapshots)), key=lambda k: (len(differences[k]), -k)) if len(snapshots) > 1 else 0
    result.update(status="no_match", differences=differences[closest][:SHOWN_DIFFERENCES], reason=(
        "no prefix of the migrations folder leaves the live schema; the closest, migrations 1..%d, differs in %d "
        "object%s: the database was changed outside these migrations (or the folder is not this database's), so no "
        "baseline is proven" % (closest, len(differences[closest]), "" if len(differences[closest]) == 1 else "s")))
    return result


def baseline_unavailable(names: list, status: str, message: str, where: str | None) -> dict:
    """The baseline result when no replay could run (status of the replay: unavailable or error)."""
    return {"status": "unproven" if status == "unavailable" else "error", "prefix": [], "pending": list(names),
            "database": where, "differences": [],
            "reason": "no baseline without a replay of the migrations: %s" % message}
