# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replay of hosts that have no scratch database (no CREATEDB, no shadow_url), done on the controller.

The host's module sends its live schema snapshot and the digests of migrations 1..N (the texts the controller does
not have yet); the controller replays them in a throwaway server (scratch_server.py) and judges the evidence again
with both methods (evidence.judge_migration). A replay is kept in a cache keyed by the server's major version, the
schema and the digests of the scripts, so a fleet that shares one migrations folder pays for it once; hosts replaying
the same key at once wait for the first (a lock per key).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.baseline import BASELINE_KEY
from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import (
    ExtensionMissing, ShadowResult, replay_in, replay_prefixes_in,
)
from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.scratch_server import ScratchServer, find_bindir

DEFAULT_CACHE_DIR = "~/.cache/prisma_ops_migrate/replay"
CACHE_DIR_ENV = "PRISMA_OPS_REPLAY_CACHE"  # where the controller keeps replays and scripts
KNOWN_SCRIPTS_LIMIT = 5000  # beyond this the host sends every text rather than a huge argument list
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")


def _code_version() -> str:
    """The replay's result depends on how scripts are split and schemas snapshotted: a change there is a new key."""
    digest = hashlib.sha256()
    for name in ("replay.py", "schema_snapshot.py", "sql_statements.py"):
        with open(os.path.join(_MODULE_UTILS, name), "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def _private_dir(path: str) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def known_scripts(cache_dir: str) -> list:
    scripts = os.path.join(os.path.expanduser(cache_dir), "scripts")
    try:
        names = [n[:-4] for n in os.listdir(scripts) if n.endswith(".sql") and _DIGEST.match(n[:-4])]
    except OSError:
        return []
    return sorted(names) if len(names) <= KNOWN_SCRIPTS_LIMIT else []


def _write_private(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _texts(cache_dir: str, sent: dict) -> dict:
    """Every script text by digest: the ones the host sent (checked and stored), then the stored ones."""
    scripts = _private_dir(os.path.join(cache_dir, "scripts"))
    texts = {}
    for digest, text in (sent or {}).items():
        if not _DIGEST.match(digest) or hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != digest:
            raise PrismaOpsError("the host sent a migration text whose sha256 is not %s" % digest[:70])
        texts[digest] = text
        path = os.path.join(scripts, digest + ".sql")
        if not os.path.exists(path):
            _write_private(path, text)
    return texts


def _text(cache_dir: str, texts: dict, digest: str) -> str:
    if digest in texts:
        return texts[digest]
    return script_text(cache_dir, digest)


def script_text(cache_dir: str, digest: str) -> str:
    """A script the controller stored earlier, by its sha256."""
    cache_dir = os.path.expanduser(cache_dir)
    if not _DIGEST.match(digest):
        raise PrismaOpsError("not a sha256 digest: %r" % digest[:70])
    with open(os.path.join(cache_dir, "scripts", digest + ".sql"), encoding="utf-8", errors="surrogatepass") as handle:
        return handle.read()


class _Server:
    """One throwaway server, started on the first cache miss of a call and stopped at its end."""

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.server = None

    def database(self):
        if self.server is None:
            self.server = ScratchServer(self.bindir).__enter__()
        return self.server.database()

    def close(self) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)


def replay_on_controller(replay_input: dict, schema: str, server_version_num: int | None,
                         cache_dir: str = DEFAULT_CACHE_DIR, bindir: str | None = None) -> dict:
    """{migration name: ShadowResult} for each migration of replay_input (what the module's collect_evidence filled)."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import require_pglast
    require_pglast()
    try:
        import psycopg2  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        raise PrismaOpsError("the controller's Python has no psycopg2: `pip install psycopg2-binary` beside "
                             "ansible-core to give hosts without a scratch database a replay")
    cache_dir = _private_dir(os.path.expanduser(cache_dir))
    major = server_version_num // 10000 if server_version_num else None
    chosen = find_bindir(major, bindir)
    texts = _texts(cache_dir, replay_input.get("texts") or {})
    results = {}
    server = _Server(chosen)
    try:
        for name, item in sorted((replay_input.get("migrations") or {}).items()):
            scripts = [tuple(pair) for pair in item["scripts"]]

            def replay(scripts=scripts) -> tuple:
                prior = [(n, _text(cache_dir, texts, d)) for n, d in scripts[:-1]]
                conn = server.database()
                try:
                    result = replay_in(conn, prior, _text(cache_dir, texts, scripts[-1][1]), schema, "controller")
                finally:
                    conn.close()
                # An extension installed later must get its replay: "unavailable" is never kept.
                return result.to_json(), result.status != "unavailable"

            results[name] = ShadowResult.from_json(_cached(cache_dir, [_code_version(), chosen, schema, scripts],
                                                           replay))
        if replay_input.get(BASELINE_KEY):
            results[BASELINE_KEY] = _prefixes(server, cache_dir, texts, chosen, schema,
                                              [tuple(pair) for pair in replay_input[BASELINE_KEY]["scripts"]])
    finally:
        server.close()
    return results


def _prefixes(server: "_Server", cache_dir: str, texts: dict, chosen: str, schema: str, scripts: list):
    """The snapshots after 0..N migrations of a baseline request (one pass; cached like a replay), or a
    ShadowResult (unavailable, error) saying why there are none (never cached)."""
    def replay() -> tuple:
        conn = server.database()
        try:
            snapshots = replay_prefixes_in(conn, [(n, _text(cache_dir, texts, d)) for n, d in scripts], schema)
        except ExtensionMissing as exc:
            return ShadowResult("unavailable", exc.msg, "controller").to_json(), False
        except PrismaOpsError as exc:
            return ShadowResult("error", exc.msg, "controller").to_json(), False
        finally:
            conn.close()
        return {"snapshots": snapshots}, True

    data = _cached(cache_dir, [_code_version(), chosen, schema, "prefixes", scripts], replay)
    return data["snapshots"] if "snapshots" in data else ShadowResult.from_json(data)


def _cached(cache_dir: str, key_parts: list, compute) -> dict:
    """The JSON a replay left under this key, or compute()'s (data, keep), kept when `keep`. Hosts that need the same
    key at once wait for the first (a lock per key) and then read its result."""
    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()
    path = os.path.join(cache_dir, key + ".json")
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        data, keep = compute()
        data = json.loads(json.dumps(data))  # what the cache gives back next time, exactly
        if keep:
            _write_private(path, json.dumps(data))
        return data
    finally:
        os.close(lock)


def cache_dir() -> str:
    return os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR


def execute_asking_for_replay_input(action, task_vars: dict, wanted: bool) -> tuple:
    """Run the task's module on the host, asking it for replay_input when `wanted`.

    (module result without replay_input, replay_input or None).
    """
    args = dict(action._task.args)  # pylint: disable=protected-access
    if wanted:
        args.update(replay_input=True, replay_known_scripts=known_scripts(cache_dir()))
    result = action._execute_module(  # pylint: disable=protected-access
        module_name=action._task.resolved_action, module_args=args, task_vars=task_vars)  # pylint: disable=protected-access
    material = result.pop("replay_input", None)
    if not material or result.get("failed") or not (material.get("migrations") or material.get(BASELINE_KEY)):
        material = None
    return result, material


class ControllerReplayAction(ActionBase):
    """The action plugin of a module whose replay may be done on the controller (its option controller_replay).

    run: the module runs on the host, asked for replay_input when the task may need a replay (replay_wanted); when
    it sends some, the controller replays and the subclass finishes the result: replayed() with what judge() made of
    the replays, or not_replayed() with why the controller could not replay.
    """

    TRANSFERS_FILES = False
    # False for a module that is run again after the replay: its first result was only the request for one.
    KEEP_FIRST_RESULT = True

    def replay_wanted(self, args: dict) -> bool:  # pylint: disable=unused-argument
        """Whether the task may need a replay at all, controller_replay aside."""
        return True

    def server_version_num(self, module_result: dict) -> int | None:
        """The host's server_version_num, which picks the controller's PostgreSQL binaries."""
        return (module_result.get("connection") or {}).get("server_version_num")

    def judge(self, material: dict, replays: dict, schema: str):  # pylint: disable=unused-argument
        """What the replays say; a PrismaOpsError or OSError here counts as the replay's own (not_replayed)."""
        return replays

    def replayed(self, result: dict, material: dict, judged, task_vars: dict) -> dict:
        raise NotImplementedError

    def not_replayed(self, result: dict, material: dict, note: str, task_vars: dict) -> dict:
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused
        args = self._task.args
        wanted = self.replay_wanted(args) and boolean(args.get("controller_replay", True), strict=False)
        module_result, material = execute_asking_for_replay_input(self, task_vars, wanted)
        if material is None or self.KEEP_FIRST_RESULT:
            result.update(module_result)
        if material is None:
            return result
        schema = (module_result.get("connection") or {}).get("schema") or "public"
        try:
            replays = replay_on_controller(material, schema, self.server_version_num(module_result), cache_dir())
            judged = self.judge(material, replays, schema)
        except (PrismaOpsError, OSError) as exc:
            return self.not_replayed(result, material, getattr(exc, "msg", None) or str(exc), task_vars)
        return self.replayed(result, material, judged, task_vars)
