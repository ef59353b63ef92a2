# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""prisma_migration_complete, with the proof's replay on the controller for hosts that have no scratch database.

The module runs on the host. When its proof needs a replay that cannot run there (no CREATEDB, no shadow_url), it
does nothing and returns the migrations' digests and texts; the controller replays 1..N (cached,
plugin_utils/controller_replay.py) and runs the module again with the replay's "after" snapshot, which the module
compares with the schema it made before committing. What the module documents.
"""

from __future__ import annotations

from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.controller_replay import ControllerReplayAction


class ActionModule(ControllerReplayAction):
    KEEP_FIRST_RESULT = False

    def replay_wanted(self, args):
        return args.get("proof", "auto") != "skip"

    def judge(self, material, replays, schema):
        [replay] = replays.values()
        return replay

    def replayed(self, result, material, judged, task_vars):
        if judged.after is not None:
            return self._run_again(result, task_vars, judged.after, None)
        return self._run_again(result, task_vars, None, "the replay on the controller failed: %s" % judged.message)

    def not_replayed(self, result, material, note, task_vars):
        return self._run_again(result, task_vars, None, "no replay on the controller: %s" % note)

    def _run_again(self, result, task_vars, after, note):
        """The module's real run, with the replay's "after" snapshot to prove against; the first run only asked."""
        again = dict(self._task.args, replay_input=False)
        if after is not None:
            again["replay_after"] = after
        result.update(self._execute_module(module_name=self._task.resolved_action, module_args=again,
                                           task_vars=task_vars))
        if note:
            result.setdefault("warnings", []).append(note)
            if isinstance(result.get("proof"), dict) and not result["proof"].get("checked"):
                result["proof"]["reason"] = "%s; %s" % (result["proof"].get("reason"), note)
        return result
