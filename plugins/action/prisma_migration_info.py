# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""prisma_migration_info, with a replay on the controller for hosts that have no scratch database.

The module runs on the host as always. With evidence and controller_replay (the default), a failed migration whose
replay could not run there (no CREATEDB, no shadow_url) comes back with what a replay needs (the live snapshot and
the migrations' digests and texts); the controller replays them once per migrations folder (cached) and judges that
migration's evidence again with both methods (plugin_utils/controller_replay.py). What the module documents.
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import judge_migration
from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.controller_replay import (
    cache_dir, execute_asking_for_replay_input, replay_on_controller, script_text)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused
        args = self._task.args
        evidence = boolean(args.get("evidence", False), strict=False)
        wanted = evidence and boolean(args.get("controller_replay", True), strict=False)
        module_result, material = execute_asking_for_replay_input(self, task_vars, wanted)
        result.update(module_result)
        if material is None:
            return result
        connection = result.get("connection") or {}
        schema = connection.get("schema") or "public"
        try:
            replays = replay_on_controller(material, schema, (result.get("server") or {}).get("server_version_num"),
                                           cache_dir())
            texts = material.get("texts") or {}
            judged = {}
            for name, replay in replays.items():
                item = material["migrations"][name]
                digest = item["scripts"][-1][1]
                script = texts[digest] if digest in texts else script_text(cache_dir(), digest)
                judged[name] = judge_migration(name, script, material["live_snapshot"], schema, item.get("error"), replay)
        except (PrismaOpsError, OSError) as exc:
            note = getattr(exc, "msg", None) or str(exc)
            for name in material["migrations"]:
                shadow = (result.get("evidence") or {}).get(name, {}).get("shadow")
                if shadow:
                    shadow["message"] = "%s; no replay on the controller either: %s" % (shadow["message"], note)
            result.setdefault("warnings", []).append("no replay on the controller: %s" % note)
            return result
        result["evidence"].update(judged)
        return result
