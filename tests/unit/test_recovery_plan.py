"""The recovery plan (module_utils/recovery_plan.py) as pure functions: the whole action table (verdict x override x
partial strategy x check mode), the evidence's recommendation only ever making a step safer, the completion previews,
the stops before any step, and the printed plan."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import ACTIONS
from ansible_collections.prisma_ops.migrate.plugins.module_utils.recovery_plan import (
    ACTION_TABLE, OVERRIDE_ACTIONS, PARTIAL_STRATEGIES, VERDICTS, after_failed_deploy, apply_previews, decide, plan,
    plan_lines,
)

pytestmark = pytest.mark.unit

NAME = "20240301000000_grades"


def before(verdict: str | None = "not_applied", recommended: str | None = "", **extra) -> dict:
    evidence = {} if verdict is None else {NAME: {
        "verdict": verdict, "reason": "why " + verdict,
        "recommended_action": ACTIONS.get(verdict, "stop") if recommended == "" else recommended}}
    found = {"failed_migrations": [NAME], "evidence": evidence, "summary": "deploy blocked (P3009)", "in_sync": False,
             "will_deploy": []}
    found.update(extra)
    return found


# What each cell must be, written out rather than derived from ACTION_TABLE, so the table itself is under test.
EXPECTED = {
    ("applied", "proven"): "applied", ("applied", "complete"): "applied", ("applied", "stop"): "applied",
    ("not_applied", "proven"): "rolled_back", ("not_applied", "complete"): "rolled_back",
    ("not_applied", "stop"): "rolled_back",
    ("partial", "proven"): "complete", ("partial", "complete"): "complete", ("partial", "stop"): "stop",
    ("unknown", "proven"): "stop", ("unknown", "complete"): "stop", ("unknown", "stop"): "stop",
}


@pytest.mark.parametrize("verdict, override, strategy, check_mode", list(itertools.product(
    VERDICTS, (None,) + OVERRIDE_ACTIONS, PARTIAL_STRATEGIES, (False, True))))
def test_every_cell_of_the_action_table(verdict, override, strategy, check_mode):
    overrides = {NAME: override} if override else {}
    previews = {NAME: {"ran": [{"index": 2}, {"index": 3}], "proof": {"checked": strategy == "proven"}}}
    result = plan({"before": before(verdict), "overrides": overrides, "partial_strategy": strategy,
                   "previews": previews, "host": "h", "deploy_command": ["prisma", "migrate", "deploy"]},
                  check_mode=check_mode)
    step = result["plan"][0]
    want = override or EXPECTED[(verdict, strategy)]
    assert step["action"] == want and ACTION_TABLE[verdict][strategy] == EXPECTED[(verdict, strategy)]
    assert step["source"] == ("override" if override else "evidence") and step["verdict"] == verdict
    # The proof is required only where the plan chose to complete on its own under `proven`.
    assert step["proof"] == ("required" if not override and strategy == "proven" else "auto")
    assert result["changed"] is False and result["final"] is True
    stopped = want == "stop"
    assert result["stopped"] == ([NAME] if stopped else []) and bool(result["stop"]) is stopped
    assert result["to_apply"] == ([NAME] if want == "applied" else [])
    assert result["to_roll_back"] == ([NAME] if want == "rolled_back" else [])
    assert result["to_complete"] == ([NAME] if want == "complete" else [])
    assert result["will_deploy"] is (want == "rolled_back")
    # Check mode changes the plan's first line only.
    assert ("(check mode: nothing will change)" in result["lines"][0]) is check_mode
    same = plan({"before": before(verdict), "overrides": overrides, "partial_strategy": strategy, "previews": previews,
                 "host": "h", "deploy_command": ["prisma", "migrate", "deploy"]}, check_mode=not check_mode)
    assert same["plan"] == result["plan"] and same["lines"][1:] == result["lines"][1:]


@pytest.mark.parametrize("verdict", ["applied", "not_applied"])
@pytest.mark.parametrize("recommended", ["stop", None, "resolve_something_new"])
def test_the_evidence_recommending_a_stop_stops_whatever_the_verdict(verdict, recommended):
    decided = decide(before(verdict, recommended=recommended))
    assert decided["steps"][0]["action"] == "stop", decided
    # The two recommendations that agree with the verdict let it through (the ordinary case).
    assert decide(before(verdict))["steps"][0]["action"] == {"applied": "applied", "not_applied": "rolled_back"}[verdict]


def test_an_override_is_the_operators_word_even_against_a_stop():
    decided = decide(before("unknown"), overrides={NAME: "applied"})
    assert decided["steps"][0]["action"] == "applied" and decided["steps"][0]["source"] == "override"


def test_no_evidence_or_a_verdict_this_plan_does_not_know_stops():
    assert decide(before(None))["steps"][0]["action"] == "stop"
    assert decide(before("half_applied"))["steps"][0] == {
        "name": NAME, "verdict": "unknown", "reason": "why half_applied", "source": "evidence", "action": "stop",
        "proof": "required"}


@pytest.mark.parametrize("overrides, strategy, said", [
    ({NAME: "finish"}, "proven", "recover_overrides values must be applied, rolled_back or complete"),
    ({NAME: "applied", "other": "push"}, "proven", "recover_overrides values must be"),
    ({}, "yolo", "recover_partial_strategy must be proven, complete or stop, got yolo"),
])
def test_choices_the_plan_does_not_know_change_nothing(overrides, strategy, said):
    with pytest.raises(PrismaOpsError) as raised:
        decide(before(), overrides=overrides, partial_strategy=strategy)
    assert said in raised.value.msg and raised.value.msg.endswith("nothing was changed")


def test_completions_wait_for_their_previews_and_a_refused_one_stops():
    first = plan({"before": before("partial"), "host": "h"})
    assert first["final"] is False and first["to_preview"] == [NAME] and first["stop"] == ""
    refused = apply_previews(first["plan"], {NAME: {"msg": "statement 4 cannot run in a transaction"}})
    assert refused[0]["action"] == "stop"
    assert refused[0]["reason"] == "completion refused: statement 4 cannot run in a transaction"
    assert apply_previews(first["plan"], {})[0]["reason"] == "completion refused: no preview"
    final = plan({"before": before("partial"), "host": "h", "previews": {NAME: {"msg": "no replay"}}})
    assert final["stopped"] == [NAME] and NAME in final["stop"] and "completion refused: no replay" in final["stop"]
    ran = plan({"before": before("partial"), "host": "h",
                "previews": {NAME: {"ran": [{"index": 4}, {"index": 5}], "proof": {"checked": True}}}})
    assert ran["plan"][0]["statements"] == [4, 5] and ran["plan"][0]["proven"] is True and ran["stop"] == ""
    assert ran["lines"][1] == ("- %s: run 2 missing statements (4, 5), then resolve --applied, committed only if "
                               "identical to a clean apply [evidence; verdict partial: why partial]" % NAME)


def test_a_history_that_is_not_a_table_stops_before_any_step():
    result = plan({"before": before("applied", table_finding="_prisma_migrations is a view"), "host": "h"})
    assert result["plan"] == [] and result["lines"] == []
    assert result["stop"] == "stopped before any change: _prisma_migrations is a view; then run again"


def test_a_history_for_another_provider_stops_before_any_step():
    finding = {"code": "P3019", "lock_provider": "sqlite", "expected": "postgresql",
               "message": "migration_lock.toml names sqlite: Prisma refuses with P3019"}
    result = plan({"before": before("applied", provider_finding=finding), "overrides": {NAME: "applied"}})
    assert result["plan"] == [] and result["stop"] == ("stopped before any change: migration_lock.toml names sqlite: "
                                                       "Prisma refuses with P3019")


def test_a_baseline_is_marked_only_when_proven_and_asked():
    proven = before(None, failed_migrations=[], baseline_needed=True,
                    baseline={"status": "proven", "reason": "the prefix replays to the live schema",
                              "prefix": ["a_init", "b_users"]})
    asked = plan({"before": proven, "baseline": True, "host": "h"})
    assert [(s["name"], s["action"], s["source"]) for s in asked["plan"]] == [
        ("a_init", "applied", "baseline"), ("b_users", "applied", "baseline")]
    assert asked["to_apply"] == ["a_init", "b_users"] and asked["stop"] == ""
    not_asked = plan({"before": proven, "host": "h"})
    assert not_asked["plan"] == [] and "Set recover_baseline=true to mark a_init, b_users applied" in not_asked["stop"]
    unproven = dict(proven, baseline={"status": "unknown", "reason": "no prefix matches"})
    stopped = plan({"before": unproven, "baseline": True})
    assert "the evidence's baseline is unknown: no prefix matches." in stopped["stop"]
    assert "Set recover_baseline" not in stopped["stop"]


def test_the_printed_plan_names_the_backup_and_the_deploy():
    result = plan({"before": before("not_applied"), "host": "lab-1", "deploy_command": ["npx", "prisma", "migrate",
                   "deploy"], "backup_dir": "/var/backups/prisma_ops", "backup_reuse_within": "2h"})
    assert result["lines"] == [
        "PLAN for lab-1: deploy blocked (P3009)",
        "- %s: resolve --rolled-back, then deploy re-runs it [evidence; verdict not_applied: why not_applied]" % NAME,
        "backup: pg_backup into /var/backups/prisma_ops (reused within 2h)",
        "deploy: npx prisma migrate deploy",
    ]
    off = plan({"before": before("applied"), "host": "lab-1", "backup": False, "deploy": False})
    assert off["lines"][2:] == ["backup: OFF (recover_backup=false)", "deploy: skipped (recover_deploy=false)"]
    applied = plan({"before": before("applied"), "host": "lab-1"})
    assert applied["lines"][-1] == "deploy: nothing to deploy" and applied["will_deploy"] is False


def test_nothing_to_do_says_whether_the_host_is_in_sync():
    in_sync = before(None, failed_migrations=[], in_sync=True, summary="in sync")
    assert plan({"before": in_sync, "host": "h"})["lines"] == ["PLAN for h: in sync", "nothing to do: the host is in sync"]
    pending = before(None, failed_migrations=[], will_deploy=["c_new"], summary="1 to deploy")
    result = plan({"before": pending, "host": "h", "deploy_command": ["prisma", "migrate", "deploy"]})
    assert result["will_deploy"] is True and result["lines"][-1] == "deploy: prisma migrate deploy"
    drifted = before(None, failed_migrations=[], summary="modified")
    assert plan_lines("h", drifted, [], {"will_deploy": False}, True, [], True, "", "")[-1] == \
        "nothing to do that this role can do (not in sync: see the history)"


# ------------------------------------------------------------------ after a failed deploy attempt

def failed_deploy(code=None, msg="prisma migrate deploy failed (exit 1)", attempt=1, max_attempts=3) -> dict:
    return {"result": {"code": code, "msg": msg, "rc": 1}, "attempt": attempt, "max_attempts": max_attempts}


def history_after(verdict: str | None, sqlstate: str | None = None, message: str = "boom") -> dict:
    if verdict is None:
        return {"failed_migrations": [], "migrations": [{"name": "a_init", "state": "applied"}], "evidence": {}}
    found = before(verdict)
    found["migrations"] = [{"name": NAME, "state": "failed",
                            "error": {"sqlstate": sqlstate, "message": message, "engine": "native"}}]
    return found


def test_no_failed_row_means_another_attempt_while_attempts_remain():
    decided = after_failed_deploy(failed_deploy("P1001"), history_after(None))
    assert decided["retry"] is True and decided["to_roll_back"] == [] and decided["stop"] == ""
    last = after_failed_deploy(failed_deploy(attempt=3), history_after(None))
    assert last["retry"] is False
    assert last["stop"].startswith("deploy failed 3 time(s) (recover_max_attempts=3): prisma migrate deploy failed")


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "55P03", "57014"])
def test_an_error_of_the_moment_that_left_no_effect_is_rolled_back_and_tried_again(sqlstate):
    decided = after_failed_deploy(failed_deploy("P3018"), history_after("not_applied", sqlstate, "deadlock"))
    assert decided["retry"] is True and decided["to_roll_back"] == [NAME]
    assert decided["attempt_error"] == {"code": "P3018", "message": "prisma migrate deploy failed (exit 1)",
                                        "migration": NAME, "sqlstate": sqlstate, "database_message": "deadlock"}


@pytest.mark.parametrize("verdict", ["partial", "unknown", "applied"])
def test_an_error_of_the_moment_that_left_effects_stops(verdict):
    decided = after_failed_deploy(failed_deploy("P3018"), history_after(verdict, "40P01"))
    assert decided["retry"] is False and decided["to_roll_back"] == []
    assert "does not show that the failed migration left no effect (%s: %s)" % (NAME, verdict) in decided["stop"]


def test_a_lasting_sql_error_stops_at_once_naming_the_database_error():
    after = history_after("not_applied", "42P01", 'relation "Nope" does not exist')
    decided = after_failed_deploy(failed_deploy("P3018"), after)
    assert decided["retry"] is False
    assert decided["stop"] == (
        "deploy attempt 1 of 3 failed: prisma migrate deploy failed (exit 1); migration %s failed with relation "
        "\"Nope\" does not exist (SQLSTATE 42P01). The error is not one of the moment, so another attempt would fail "
        "the same way and meet P3009; the host stops with %s failed" % (NAME, NAME))


def test_a_history_that_cannot_be_read_again_stops():
    for after in (None, {"failed": True, "msg": "connection refused"}):
        decided = after_failed_deploy(failed_deploy(), after)
        assert decided["retry"] is False and "the history could not be read again" in decided["stop"]


def test_the_action_runs_the_same_judgement():
    result = plan({"before": history_after(None), "failed_attempt": failed_deploy()})
    assert result["retry"] is True and result["changed"] is False
