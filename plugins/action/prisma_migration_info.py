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

from ansible_collections.prisma_ops.migrate.plugins.module_utils.baseline import (
    BASELINE_KEY, baseline_unavailable, judge_baseline,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import judge_migration
from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import ShadowResult
from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.controller_replay import (
    ControllerReplayAction, cache_dir, script_text)


class ActionModule(ControllerReplayAction):

    def replay_wanted(self, args):
        return boolean(args.get("evidence", False), strict=False)

    def server_version_num(self, module_result):
        return (module_result.get("server") or {}).get("server_version_num")

    def judge(self, material, replays, schema):
        texts = material.get("texts") or {}
        judged = {}
        for name, replay in replays.items():
            if name == BASELINE_KEY:
                names = [n for n, _d in material[BASELINE_KEY]["scripts"]]
                judged[name] = (baseline_unavailable(names, replay.status, replay.message, "controller")
                                if isinstance(replay, ShadowResult)
                                else judge_baseline(names, replay, material["live_snapshot"], "controller"))
                continue
            item = material["migrations"][name]
            digest = item["scripts"][-1][1]
            script = texts[digest] if digest in texts else script_text(cache_dir(), digest)
            judged[name] = judge_migration(name, script, material["live_snapshot"], schema, item.get("error"), replay)
        return judged

    def replayed(self, result, material, judged, task_vars):
        if BASELINE_KEY in judged:
            result["baseline"] = judged.pop(BASELINE_KEY)
        result["evidence"].update(judged)
        return result

    def not_replayed(self, result, material, note, task_vars):
        if material.get(BASELINE_KEY) and result.get("baseline"):
            result["baseline"]["reason"] = "%s; no replay on the controller either: %s" % (
                result["baseline"]["reason"], note)
        for name in material.get("migrations") or ():
            shadow = (result.get("evidence") or {}).get(name, {}).get("shadow")
            if shadow:
                shadow["message"] = "%s; no replay on the controller either: %s" % (shadow["message"], note)
        result.setdefault("warnings", []).append("no replay on the controller: %s" % note)
        return result
