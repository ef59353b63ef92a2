"""The failure corpus (issue 12, "Must show"): every project x every migration as N x every failure shape, in both modes.

tests/failure_corpus holds Prisma projects' migration histories written in the styles of public Prisma projects;
tests/harness/failure_shapes.py builds each failure shape of each migration for real on PostgreSQL 15 and judges
it with evidence.judge_migration, by the probes alone (the hosts without CREATEDB or shadow_url) and with the
replay (replay.replay_in in a fresh database on the same cluster). The bar: no applied / not_applied verdict
outside the shape's right verdicts, in either mode. Figures go to the test output and tests/output/, overall and
per Prisma engine family (tests/harness/native_engine.py: which shapes native 6.x-7.3, native >= 7.4 and the JS
engine can leave; "none" counts the shapes only a hand edit or a crash leaves, judged all the same).
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from pathlib import Path

from tests.harness.failure_shapes import MODES, Summary, plan_shapes, projects, run_project
from tests.harness.native_engine import FAMILIES, NATIVE_SPLIT, NATIVE_WHOLE

OUTPUT = Path(__file__).resolve().parents[1] / "output" / "failure_corpus.json"

# Wrong applied / not_applied verdicts known today, keyed (project, migration, shape, mode) -> (verdict, why).
# The test fails when a new wrong case appears AND when one of these is fixed (then remove it here).
KNOWN_WRONG: dict = {}


def test_every_failure_shape_of_every_corpus_migration_in_both_modes(pg_cluster, capsys):
    owner = pg_cluster.create_role("fc_owner_%s" % secrets.token_hex(3))
    summary = Summary()
    replays = {}
    expected_shapes = 0
    for project in projects():
        expected_shapes += sum(len(plan_shapes(script)) for _name, script in project.migrations)

        def seen(project, name, result) -> None:
            replays[(project.name, name)] = result.status

        summary.results.extend(run_project(pg_cluster, project, owner, on_migration=seen))

    figures = summary.per_mode()
    families = summary.per_family()
    wrong = summary.wrong()
    verdicts = Counter((r.mode, r.verdict) for r in summary.results)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps({
        "cases_per_mode": expected_shapes, "per_mode": figures, "per_family": families,
        "verdicts": {mode: {v: n for (m, v), n in sorted(verdicts.items()) if m == mode} for mode in MODES},
        "wrong": [r.as_dict() for r in wrong.values()],
        "safe_wrong": [r.as_dict() for r in summary.results if r.outcome == "safe_wrong"],
        "cases": [r.as_dict() for r in summary.results]}, indent=1))
    line = "failure corpus: %d migrations, %d cases per mode; %s" % (
        len(replays), expected_shapes, "; ".join(
            "%s: %d wrong, %d safe-but-wrong, unknown %.1f%%" % (
                mode, figures[mode]["wrong"], figures[mode]["safe_wrong"], 100 * figures[mode]["unknown_rate"])
            for mode in MODES))
    per_family = "; ".join("%s: %d cases, %d wrong, unknown %d/%d (probes/replay)" % (
        family, families[family]["probes"]["cases"], families[family]["probes"]["wrong"]
        + families[family]["replay"]["wrong"], families[family]["probes"]["unknown"], families[family]["replay"]["unknown"])
        for family in FAMILIES + ("none",))
    with capsys.disabled():
        print("\n" + line + " (details: %s)" % OUTPUT)
        print("per engine family, cases per mode: " + per_family)

    # Every shape was judged in both modes, and every replay ran (a replay error would leave the probes alone).
    assert figures["probes"]["cases"] == figures["replay"]["cases"] == expected_shapes
    assert all(status not in ("error", "unavailable") for status in replays.values()), replays
    # Each shape family is there: nothing, everything, and every partial prefix a file can leave.
    shapes = Counter(r.shape.split("_")[0] for r in summary.results if r.mode == "probes")
    assert shapes["not"] == shapes["stuck"] == len(replays) and shapes["partial"] > 0 and shapes["hand"] > 0
    assert {key: (r.verdict, r.reason) for key, r in wrong.items()}.keys() == KNOWN_WRONG.keys(), line
    # Every family leaves shapes of the corpus, and 7.4+ (per statement) leaves the partial ones 6.x-7.3 cannot.
    partial_by = Counter(f for r in summary.results if r.mode == "probes" and r.shape.split("_")[0] in ("partial", "all")
                         for f in r.left_by)
    assert all(families[f]["probes"]["cases"] > 0 for f in FAMILIES), families
    assert partial_by[NATIVE_SPLIT] > 2 * partial_by[NATIVE_WHOLE] > 0, partial_by


def test_the_harness_catches_a_wrong_verdict_and_clears_only_a_proven_no_op(pg_cluster, tmp_path, monkeypatch):
    """A judge that always says applied is caught; applied on a state whose rest changed nothing is right."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils import evidence
    from tests.harness.failure_shapes import load_project

    folder = tmp_path / "tiny"
    for name, text in (
            ("20240101000000_init", 'CREATE TABLE "A" ("id" INTEGER);\nCREATE INDEX "A_id_idx" ON "A"("id");\n'),
            # After statement 1 the rest is a no-op here (the index does not exist): the schema is already final.
            ("20240201000000_noop_tail", 'CREATE TABLE "C" ("id" INTEGER);\nDROP INDEX IF EXISTS "C_gone_idx";\n'),
            # After statement 1 the schema is final too, but the data statement still has to run.
            ("20240301000000_data_tail", 'ALTER TABLE "C" ADD COLUMN "x" INTEGER;\nUPDATE "C" SET "x" = 1;\n')):
        (folder / name).mkdir(parents=True)
        (folder / name / "migration.sql").write_text(text)

    def always_applied(name, script, live, schema, error=None, replay=None):
        return {"verdict": "applied", "reason": "claimed", "probe_verdict": "applied", "shadow": None}

    monkeypatch.setattr(evidence, "judge_migration", always_applied)
    owner = pg_cluster.create_role("fc_tiny_%s" % secrets.token_hex(3))
    got = {(r.migration[15:], r.shape, r.mode): (r.outcome, r.note.split(" ")[0])
           for r in run_project(pg_cluster, load_project(folder), owner)}
    for mode in MODES:
        assert got[("init", "not_applied", mode)] == ("wrong", "")
        assert got[("init", "all_but_last", mode)] == ("wrong", "")
        assert got[("init", "stuck_applied", mode)] == ("right", "")
        assert got[("noop_tail", "all_but_last", mode)] == ("right", "pg_dump")
        assert got[("data_tail", "all_but_last", mode)] == ("wrong", "")
