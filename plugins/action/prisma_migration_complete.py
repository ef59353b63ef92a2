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

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.controller_replay import (
    cache_dir, execute_asking_for_replay_input, replay_on_controller)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused
        args = self._task.args
        wanted = args.get("proof", "auto") != "skip" and boolean(args.get("controller_replay", True), strict=False)
        module_result, material = execute_asking_for_replay_input(self, task_vars, wanted)
        if material is None:
            result.update(module_result)
            return result
        connection = module_result.get("connection") or {}
        again = dict(args, replay_input=False)
        note = None
        try:
            [replay] = replay_on_controller(material, connection.get("schema") or "public",
                                            connection.get("server_version_num"), cache_dir()).values()
            if replay.after is not None:
                again["replay_after"] = replay.after
            else:
                note = "the replay on the controller failed: %s" % replay.message
        except (PrismaOpsError, OSError) as exc:
            note = "no replay on the controller: %s" % (getattr(exc, "msg", None) or exc)
        result.update(self._execute_module(module_name=self._task.resolved_action, module_args=again,
                                           task_vars=task_vars))
        if note:
            result.setdefault("warnings", []).append(note)
            if isinstance(result.get("proof"), dict) and not result["proof"].get("checked"):
                result["proof"]["reason"] = "%s; %s" % (result["proof"].get("reason"), note)
        return result
