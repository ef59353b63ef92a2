# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery plan: what to do with each failed migration, decided once, in plain Python.

The input is prisma_migration_info's result (history and evidence), the operator's overrides and the partial
strategy; the output is one step per migration (resolve applied, resolve rolled back, complete the missing
statements, or stop), why, and the printed plan. The role calls it through the prisma_recover_plan action; unit tests
call it directly. One table decides (ACTION_TABLE); the evidence's own recommended_action can only make a step safer,
never bolder: a verdict whose evidence recommends stopping stops, whatever the table says.

Completions are planned in two passes: `decide` names them, the role previews each one in check mode
(prisma_migration_complete), and `apply_previews` turns a refused preview into a stop and records what will run.
"""

from __future__ import annotations

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

OVERRIDE_ACTIONS = ("applied", "rolled_back", "complete")
PARTIAL_STRATEGIES = ("proven", "complete", "stop")
VERDICTS = ("applied", "not_applied", "partial", "unknown")

# verdict -> partial strategy -> action. `complete` runs only the missing statements, then resolves applied.
ACTION_TABLE = {
    "applied": {"proven": "applied", "complete": "applied", "stop": "applied"},
    "not_applied": {"proven": "rolled_back", "complete": "rolled_back", "stop": "rolled_back"},
    "partial": {"proven": "complete", "complete": "complete", "stop": "stop"},
    "unknown": {"proven": "stop", "complete": "stop", "stop": "stop"},
}
# What the evidence itself recommends (module_utils/evidence.ACTIONS), as the action it allows.
RECOMMENDED = {"resolve_applied": "applied", "resolve_rolled_back": "rolled_back", "stop": "stop"}

ACTION_TEXT = {
    "applied": "resolve --applied (the script's effects are all there)",
    "rolled_back": "resolve --rolled-back, then deploy re-runs it",
    "stop": "STOP for review",
}

ARGUMENT_SPEC = dict(
    before=dict(type="dict", required=True),
    overrides=dict(type="dict", default={}),
    partial_strategy=dict(type="str", default="proven", choices=list(PARTIAL_STRATEGIES)),
    baseline=dict(type="bool", default=False),
    previews=dict(type="dict"),
    deploy=dict(type="bool", default=True),
    deploy_command=dict(type="list", elements="str", default=[]),
    backup=dict(type="bool", default=True),
    backup_dir=dict(type="str", default=""),
    backup_reuse_within=dict(type="str", default=""),
    host=dict(type="str", default=""),
    failed_attempt=dict(type="dict"),
)

# Failures a second attempt can cure: Prisma could not reach the server or its lock in time (P1001, P1002 - also
# Prisma's advisory-lock timeout -, P1008, P1017), or PostgreSQL gave up on the statement for a reason of the moment
# (serialization failure, deadlock, lock not available, statement/lock timeout). Anything else fails the same way
# again: a second attempt would only meet the failed row it left (P3009).
TRANSIENT_CODES = ("P1001", "P1002", "P1008", "P1017")
TRANSIENT_SQLSTATES = ("40001", "40P01", "55P03", "57014")


def validate(overrides: dict, partial_strategy: str) -> None:
    """The operator's choices are ones the plan knows; nothing is changed otherwise."""
    unknown = sorted(set(str(v) for v in (overrides or {}).values()) - set(OVERRIDE_ACTIONS))
    if unknown:
        raise PrismaOpsError(
            "recover_overrides values must be applied, rolled_back or complete (run only the missing statements, "
            "then resolve applied), got %s: nothing was changed" % (overrides,), code="bad_override")
    if partial_strategy not in PARTIAL_STRATEGIES:
        raise PrismaOpsError("recover_partial_strategy must be proven, complete or stop, got %s: nothing was changed"
                             % partial_strategy, code="bad_partial_strategy")


def action_for(verdict: str, recommended: str | None, partial_strategy: str) -> str:
    """The table's action for a verdict, never bolder than what the evidence recommends."""
    action = ACTION_TABLE.get(verdict, ACTION_TABLE["unknown"])[partial_strategy]
    allowed = RECOMMENDED.get(recommended or "", None)
    if action in ("applied", "rolled_back") and allowed != action:
        # The evidence recommends something else (stop, or no recommendation at all): it decides.
        return "stop"
    return action


def step_for(name: str, evidence: dict, overrides: dict, partial_strategy: str) -> dict:
    verdict = evidence.get("verdict") or "unknown"
    if verdict not in VERDICTS:
        verdict = "unknown"
    if name in overrides:
        action, source, proof = overrides[name], "override", "auto"
    else:
        action = action_for(verdict, evidence.get("recommended_action"), partial_strategy)
        source = "evidence"
        # The completion module's proof option: required when the plan chose to complete on its own (proven).
        proof = "required" if partial_strategy == "proven" else "auto"
    return {"name": name, "verdict": verdict, "reason": evidence.get("reason") or "", "source": source,
            "action": action, "proof": proof}


def _baseline(before: dict, go: bool) -> tuple:
    """(steps, stop message) for a P3005 database: the proven prefix marked applied when the operator asked."""
    found = before.get("baseline") or {}
    proven = found.get("status") == "proven"
    if go and proven:
        return [{"name": name, "verdict": "baseline", "action": "applied", "source": "baseline",
                 "reason": found.get("reason") or "", "proof": "auto"} for name in found.get("prefix") or []], ""
    message = ("stopped before any change: baseline needed (P3005, tables but no _prisma_migrations); the evidence's "
               "baseline is %s: %s." % (found.get("status") or "unknown", found.get("reason") or "no evidence"))
    if proven:
        message += " Set recover_baseline=true to mark %s applied, then deploy the rest" % ", ".join(
            found.get("prefix") or [])
    return [], message


def decide(before: dict, overrides: dict | None = None, partial_strategy: str = "proven",
           baseline: bool = False) -> dict:
    """{steps, stop, to_preview}: the steps before previews; `stop` is the message when the host stops before any
    step is possible (the history is not a plain table, P3019, P3005 without a proven baseline to mark)."""
    overrides = dict(overrides or {})
    validate(overrides, partial_strategy)
    # Prisma's deploy and resolve need _prisma_migrations to be a plain table; nothing here writes into anything else.
    if before.get("table_finding"):
        return {"steps": [], "stop": "stopped before any change: %s; then run again" % before["table_finding"],
                "to_preview": []}
    provider = before.get("provider_finding")
    if provider:
        return {"steps": [], "stop": "stopped before any change: %s" % (provider.get("message") or provider),
                "to_preview": []}
    steps: list = []
    if before.get("baseline_needed"):
        steps, stop = _baseline(before, baseline)
        if stop:
            return {"steps": [], "stop": stop, "to_preview": []}
    evidence = before.get("evidence") or {}
    for name in before.get("failed_migrations") or []:
        steps.append(step_for(name, evidence.get(name) or {}, overrides, partial_strategy))
    return {"steps": steps, "stop": "", "to_preview": [s["name"] for s in steps if s["action"] == "complete"]}


def apply_previews(steps: list, previews: dict | None) -> list:
    """Each completion with what its check-mode preview says will run; a refused (or missing) preview stops it."""
    previews = previews or {}
    checked = []
    for step in steps:
        step = dict(step)
        if step["action"] == "complete":
            preview = previews.get(step["name"]) or {}
            if not isinstance(preview.get("ran"), list):
                step.update(action="stop", reason="completion refused: %s" % (preview.get("msg") or "no preview"))
            else:
                step.update(statements=[r.get("index") for r in preview["ran"]],
                            proven=bool((preview.get("proof") or {}).get("checked", False)))
        checked.append(step)
    return checked


def outline(steps: list, before: dict, deploy: bool) -> dict:
    """The names per action, and whether a deploy follows."""
    def named(action: str) -> list:
        return [s["name"] for s in steps if s["action"] == action]
    will_deploy = bool(deploy) and (bool(before.get("will_deploy")) or bool(named("rolled_back")))
    return {"stopped": named("stop"), "to_apply": named("applied"), "to_roll_back": named("rolled_back"),
            "to_complete": named("complete"), "will_deploy": will_deploy}


def stop_message(steps: list) -> str:
    stopped = [s for s in steps if s["action"] == "stop"]
    if not stopped:
        return ""
    return ("stopped before any change: %s cannot be decided from the evidence (%s: %s). Review the statements in the "
            "report, then name the action with recover_overrides={'<migration>': 'applied' or 'rolled_back'} (after "
            "finishing or undoing the script by hand), or 'complete' to run only its missing statements and resolve "
            "it applied (partial; every statement checkable)"
            % (", ".join(s["name"] for s in stopped), ", ".join(s["verdict"] for s in stopped),
               "; ".join(s["reason"] for s in stopped)))


def step_text(step: dict) -> str:
    if step["action"] == "complete":
        count = len(step.get("statements") or [])
        proof = (", committed only if identical to a clean apply" if step.get("proven")
                 else ", without a proof (no replay)")
        what = "run %d missing statement%s (%s), then resolve --applied%s" % (
            count, "" if count == 1 else "s", ", ".join(str(i) for i in step.get("statements") or []) or "none", proof)
    else:
        what = ACTION_TEXT[step["action"]]
    return "- %s: %s [%s; verdict %s: %s]" % (step["name"], what, step["source"], step["verdict"], step["reason"])


def plan_lines(host: str, before: dict, steps: list, summary: dict, deploy: bool, deploy_command: list,
               backup: bool, backup_dir: str, backup_reuse_within: str, check_mode: bool = False) -> list:
    """The plan as printed before anything changes (the same text in check mode, where nothing will)."""
    lines = ["PLAN for %s%s: %s" % (host, " (check mode: nothing will change)" if check_mode else "",
                                    before.get("summary") or "")]
    lines += [step_text(step) for step in steps]
    if steps or summary["will_deploy"]:
        lines.append("backup: pg_backup into %s (reused within %s)" % (backup_dir, backup_reuse_within) if backup
                     else "backup: OFF (recover_backup=false)")
        if summary["will_deploy"]:
            lines.append("deploy: %s" % " ".join(deploy_command))
        else:
            lines.append("deploy: %s" % ("nothing to deploy" if deploy else "skipped (recover_deploy=false)"))
    else:
        lines.append("nothing to do%s" % (": the host is in sync" if before.get("in_sync")
                                          else " that this role can do (not in sync: see the history)"))
    return lines


def attempt_error(deploy: dict, after: dict | None) -> dict:
    """What the failed attempt itself says: the CLI's P-code and message, and, when it left a failed row, that
    migration and the database's own error from the row's log (SQLSTATE, message)."""
    error = {"code": deploy.get("code"), "message": deploy.get("msg") or "", "migration": None, "sqlstate": None,
             "database_message": None}
    for entry in (after or {}).get("migrations") or []:
        if entry.get("state") == "failed":
            found = entry.get("error") or {}
            error.update(migration=entry.get("name"), sqlstate=found.get("sqlstate"),
                         database_message=found.get("message"))
    return error


def error_text(error: dict) -> str:
    text = error.get("message") or "no message"
    if error.get("migration"):
        text += "; migration %s failed" % error["migration"]
        if error.get("database_message"):
            text += " with %s%s" % (error["database_message"],
                                    " (SQLSTATE %s)" % error["sqlstate"] if error.get("sqlstate") else "")
    return text


def after_failed_deploy(failure: dict, after: dict | None, partial_strategy: str = "proven") -> dict:
    """Whether another deploy attempt may follow, decided from the history read again after the failed one (`after`,
    None when it could not be read): {retry, to_roll_back, attempt_error, stop}.

    - No failed row and attempts left: deploy again (nothing was written that a second attempt would meet).
    - A failed row: only when the error is one of the moment (TRANSIENT_*) and the new evidence says the migration
      left no effect (not_applied, recommended rolled back) is it resolved rolled back and deployed again; anything
      else stops, naming the database's own error, since a second attempt would only meet P3009.
    """
    deploy = failure.get("result") or {}
    attempt, max_attempts = int(failure.get("attempt") or 1), max(int(failure.get("max_attempts") or 1), 1)
    error = attempt_error(deploy, after)
    result = {"retry": False, "to_roll_back": [], "attempt_error": error, "stop": ""}
    said = error_text(error)
    if attempt >= max_attempts:
        result["stop"] = ("deploy failed %d time(s) (recover_max_attempts=%d): %s. Nothing more was tried"
                          % (attempt, max_attempts, said))
        return result
    if after is None or after.get("failed") or "failed_migrations" not in after:
        result["stop"] = ("deploy attempt %d failed (%s) and the history could not be read again: %s. Nothing more "
                          "was tried" % (attempt, said, (after or {}).get("msg") or "no result"))
        return result
    failed = after.get("failed_migrations") or []
    if not failed:
        result["retry"] = True
        return result
    transient = error.get("sqlstate") in TRANSIENT_SQLSTATES or error.get("code") in TRANSIENT_CODES
    steps = decide(after, {}, partial_strategy)["steps"] if not after.get("table_finding") else []
    rolled_back = [s["name"] for s in steps if s["action"] == "rolled_back"]
    if transient and steps and len(rolled_back) == len(steps):
        result.update(retry=True, to_roll_back=rolled_back)
        return result
    why = ("the error is not one of the moment, so another attempt would fail the same way and meet P3009"
           if not transient else "the new evidence does not show that the failed migration left no effect (%s)"
           % "; ".join("%s: %s" % (s["name"], s["verdict"]) for s in steps))
    result["stop"] = ("deploy attempt %d of %d failed: %s. %s; the host stops with %s failed" % (
        attempt, max_attempts, said, why[0].upper() + why[1:], ", ".join(failed)))
    return result


def plan(params: dict, check_mode: bool = False) -> dict:
    """The prisma_recover_plan result: decide, then (with previews) the final plan, its outline and its text; with
    `failed_attempt`, whether another deploy attempt follows (after_failed_deploy)."""
    before = params["before"]
    if params.get("failed_attempt"):
        return dict(after_failed_deploy(params["failed_attempt"], before, params.get("partial_strategy") or "proven"),
                    changed=False)
    decided = decide(before, params.get("overrides"), params.get("partial_strategy") or "proven",
                     bool(params.get("baseline")))
    result = {"changed": False, "stop": decided["stop"], "to_preview": decided["to_preview"]}
    steps = decided["steps"]
    final = params.get("previews") is not None or not decided["to_preview"]
    if final:
        steps = apply_previews(steps, params.get("previews"))
    summary = outline(steps, before, bool(params.get("deploy", True)))
    result.update(summary, plan=steps, final=final)
    if not decided["stop"] and final:
        result["stop"] = stop_message(steps)
    result["lines"] = [] if decided["stop"] else plan_lines(
        params.get("host") or "", before, steps, summary, bool(params.get("deploy", True)),
        list(params.get("deploy_command") or []), bool(params.get("backup", True)), params.get("backup_dir") or "",
        params.get("backup_reuse_within") or "", check_mode)
    return result
