# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a Prisma project keeps its schema, its migrations and its CLI, found as the Prisma CLI finds them.

- The config file: `prisma7.config.*` and `.config/prisma7.*` first (Prisma 7.10 lets a Prisma 7 project live
  beside Prisma 8 and run as `node_modules/.bin/prisma7`), then `prisma.config.*`, `.config/prisma.*` and
  `.config/prisma.config.*` (each also as a folder's `index.*`), extensions js, ts, mjs, cjs, mts, cts. Its
  `schema` and `migrations.path` are read where they are values the file itself fixes: string literals, template
  literals without `${}`, and `path.join` / `path.resolve` of those (with `__dirname` or
  `import.meta.dirname`). Relative paths are relative to the config file's directory, as Prisma resolves them.
  The file is never run: a value computed any other way (an environment variable, a function) is refused with the
  option to set instead, never guessed.
- Without a config: package.json's `prisma.schema`, else `prisma/schema.prisma`, else `schema.prisma`.
- The migrations folder, unless the config names it, is `migrations` beside the schema file (inside the schema
  folder of a multi-file schema).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

# In the order Prisma 7.10's @prisma/config looks (the prisma7 names first, whichever of its binaries runs; then
# c12's lookup of the `prisma` name: a file, or a folder's index file, at the root, then in .config/).
CONFIG_EXTENSIONS = ("js", "ts", "mjs", "cjs", "mts", "cts")
CONFIG_NAMES = (tuple("prisma7.config." + ext for ext in CONFIG_EXTENSIONS)
                + tuple(os.path.join(".config", "prisma7." + ext) for ext in CONFIG_EXTENSIONS)
                + tuple(name
                        for base in ("prisma.config", os.path.join(".config", "prisma"),
                                     os.path.join(".config", "prisma.config"))
                        for name in (tuple(base + "." + ext for ext in CONFIG_EXTENSIONS)
                                     + tuple(os.path.join(base, "index." + ext) for ext in CONFIG_EXTENSIONS))))
DEFAULT_SCHEMAS = (os.path.join("prisma", "schema.prisma"), "schema.prisma")
# A config file is a few hundred bytes; a bigger one is not read whole.
CONFIG_LIMIT = 256 * 1024


@dataclass
class ProjectLayout:
    """What the CLI will use in project_dir. Paths are absolute; `schema_source` and `migrations_source` say how
    each was found (the option, the config's literal, package.json, Prisma's default)."""

    project_dir: str
    config_file: str | None
    schema_path: str
    schema_source: str
    migrations_dir: str
    migrations_source: str
    cli: str

    def deploy_argv(self, schema_given: bool = False, via_npx: bool = False) -> list:
        """The project's own `prisma migrate deploy`: `--schema` only where no config names the schema (the CLI
        finds the config itself) or where the operator gave the schema path. `via_npx` for a command that runs
        in the app's container, where this host's path of the binary means nothing."""
        argv = ["npx", os.path.basename(self.cli)] if via_npx else [self.cli]
        argv += ["migrate", "deploy"]
        if schema_given or self.config_file is None:
            argv += ["--schema", os.path.relpath(self.schema_path, self.project_dir)]
        return argv

    def as_dict(self) -> dict:
        return {"project_dir": self.project_dir, "config_file": self.config_file, "schema_path": self.schema_path,
                "schema_source": self.schema_source, "migrations_dir": self.migrations_dir,
                "migrations_source": self.migrations_source, "cli": self.cli}


# ---------------------------------------------------------------- reading a config file without running it

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<template>`(?:[^`\\]|\\.)*`)
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)*)
  | (?P<punct>\.\.\.|=>|[{}()\[\]:,;=.])
  | (?P<other>.)
""", re.X | re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "`": "`", "0": "\0"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1], flags=re.S)


def tokens(source: str) -> list:
    """(kind, text, start, end) of a JavaScript / TypeScript source, comments and whitespace left out."""
    found = []
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup
        if kind in ("space", "line_comment", "block_comment"):
            continue
        text = match.group()
        if kind == "template":
            kind = "string" if "${" not in text else "expression"
        found.append((kind, text, match.start(), match.end()))
    return found


def _shown(source: str, toks: list, start: int, end: int) -> str:
    """toks[start:end] as written in the file, on one line, shortened."""
    if start >= end:
        return ""
    text = " ".join(source[toks[start][2]:toks[end - 1][3]].split())
    return text if len(text) <= 80 else text[:77] + "..."


class NotLiteral(Exception):
    """A config value the file computes (shown as written, shortened)."""


def _span(toks: list, start: int) -> int:
    """Index just after the value that starts at toks[start] (up to the `,` or `}` that ends it at its depth)."""
    depth = 0
    i = start
    while i < len(toks):
        text = toks[i][1]
        if toks[i][0] == "punct":
            if text in "([{":
                depth += 1
            elif text in ")]}":
                if depth == 0:
                    return i
                depth -= 1
            elif text == "," and depth == 0:
                return i
        i += 1
    return i


_DIRNAMES = ("__dirname", "import.meta.dirname")
_JOINS = ("path.join", "path.resolve", "join", "resolve", "posix.join", "path.posix.join")


def _value(source: str, toks: list, start: int, end: int, config_dir: str) -> str:
    """The path a value toks[start:end] fixes, absolute; NotLiteral when the file computes it."""
    part = toks[start:end]
    shown = _shown(source, toks, start, end)
    if len(part) == 1 and part[0][0] == "string":
        return os.path.normpath(os.path.join(config_dir, _unquote(part[0][1])))
    # path.join('db', 'schema.prisma'), path.resolve(__dirname, 'db')
    if (len(part) >= 3 and part[0][0] == "name" and part[0][1] in _JOINS and part[1][1] == "("
            and part[-1][1] == ")"):
        pieces, expect_arg = [], True
        for kind, text, _start, _end in part[2:-1]:
            if expect_arg and kind == "string":
                pieces.append(_unquote(text))
            elif expect_arg and kind == "name" and text in _DIRNAMES and not pieces:
                pieces.append(config_dir)
            elif not expect_arg and text == ",":
                pass
            else:
                raise NotLiteral(shown)
            expect_arg = not expect_arg
        if pieces:
            return os.path.normpath(os.path.join(config_dir, *pieces))
    raise NotLiteral(shown)


def _top_object(toks: list) -> int | None:
    """Index of the `{` that opens the exported config object: defineConfig({ ... }) or export default { ... }."""
    for i, (kind, text, _start, _end) in enumerate(toks):
        if kind == "name" and text.split(".")[-1] == "defineConfig" and i + 2 < len(toks) \
                and toks[i + 1][1] == "(" and toks[i + 2][1] == "{":
            return i + 2
    for i, (kind, text, _start, _end) in enumerate(toks):
        if kind == "name" and text in ("export", "module.exports") and i + 1 < len(toks):
            j = i + 1
            if text == "export":
                if toks[j][1] != "default":
                    continue
                j += 1
            elif toks[j][1] == "=":
                j += 1
            if j < len(toks) and toks[j][1] == "{":
                return j
    return None


def _keys(toks: list, open_index: int) -> dict:
    """{key: (value start, value end)} of the object literal whose `{` is toks[open_index] (its own keys only);
    a shorthand key (`{ schema }`) maps to its own token."""
    found = {}
    i = open_index + 1
    while i < len(toks) and toks[i][1] != "}":
        kind, text = toks[i][:2]
        if kind in ("name", "string") and i + 1 < len(toks) and toks[i + 1][1] == ":":
            key = _unquote(text) if kind == "string" else text
            end = _span(toks, i + 2)
            found[key] = (i + 2, end)
            i = end
        elif kind == "name" and i + 1 < len(toks) and toks[i + 1][1] in (",", "}"):
            found[text] = (i, i + 1)
            i += 1
        elif text == "...":
            # `...base`: any key may come from elsewhere.
            end = _span(toks, i + 1)
            found["..."] = (i, end)
            i = end
        else:
            i = _span(toks, i)
        if i < len(toks) and toks[i][1] == ",":
            i += 1
    return found


def read_config(path: str) -> dict:
    """{schema, migrations_path}: absolute paths the config fixes, None where it says nothing, or NotLiteral's
    text (prefixed "computed:") where it computes the value."""
    with open(path, "rb") as handle:
        source = handle.read(CONFIG_LIMIT).decode("utf-8", "replace")
    toks = tokens(source)
    config_dir = os.path.dirname(os.path.abspath(path))
    top = _top_object(toks)
    if top is None:
        return {"schema": "computed:the exported config object", "migrations_path": "computed:the exported config object"}
    keys = _keys(toks, top)
    spread = "computed:" + _shown(source, toks, *keys["..."]) if "..." in keys else None
    found = {"schema": spread, "migrations_path": spread}
    if "schema" in keys:
        found["schema"] = _read(source, toks, keys["schema"], config_dir)
    if "migrations" in keys:
        start, end = keys["migrations"]
        if toks[start][1] == "{":
            inner = _keys(toks, start)
            if "path" in inner:
                found["migrations_path"] = _read(source, toks, inner["path"], config_dir)
            elif "..." in inner:
                found["migrations_path"] = "computed:" + _shown(source, toks, start, end)
        else:
            found["migrations_path"] = "computed:" + _shown(source, toks, start, end)
    return found


def _read(source: str, toks: list, span: tuple, config_dir: str) -> str:
    try:
        return _value(source, toks, span[0], span[1], config_dir)
    except NotLiteral as exc:
        return "computed:" + str(exc)


# ---------------------------------------------------------------- the layout

def find_config(project_dir: str) -> str | None:
    for name in CONFIG_NAMES:
        candidate = os.path.join(project_dir, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _package_schema(project_dir: str) -> str | None:
    path = os.path.join(project_dir, "package.json")
    try:
        with open(path, "rb") as handle:
            package = json.loads(handle.read(CONFIG_LIMIT).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None
    schema = package.get("prisma", {}).get("schema") if isinstance(package, dict) and isinstance(
        package.get("prisma"), dict) else None
    return os.path.normpath(os.path.join(project_dir, schema)) if isinstance(schema, str) and schema else None


def _computed(value: str | None) -> bool:
    return bool(value) and value.startswith("computed:")


def _computed_refusal(shown_config: str, config: str, what: str, value: str, also_set: str) -> PrismaOpsError:
    """The one answer to a config value the file computes: what it computes, shown as written, and the options to set
    instead (the migrations folder always: it is found from the schema otherwise)."""
    return PrismaOpsError(
        "%s computes %s (%s), which is not read without running the file: set %sthe migrations folder "
        "(migrations_dir; the roles' recover_migrations_dir, drift_check_migrations_dir). Nothing was changed"
        % (shown_config, what, value[len("computed:"):], also_set), code="project_layout_unknown", config_file=config)


def discover(project_dir: str, schema_path: str | None = None, migrations_dir: str | None = None) -> ProjectLayout:
    """The project's layout; `schema_path` / `migrations_dir` (the operator's, relative to project_dir) win over
    what is found. PrismaOpsError when the config computes a value that is not given, naming the option to set."""
    project_dir = os.path.abspath(project_dir)
    if not os.path.isdir(project_dir):
        raise PrismaOpsError("project_dir %s is not a directory on this host" % project_dir, code="no_project")
    config = find_config(project_dir)
    values = read_config(config) if config else {"schema": None, "migrations_path": None}
    shown_config = os.path.relpath(config, project_dir) if config else None

    if schema_path:
        schema, schema_source = os.path.normpath(os.path.join(project_dir, schema_path)), "option"
    elif _computed(values["schema"]):
        raise _computed_refusal(shown_config, config, "its schema path", values["schema"],
                                "the schema path (schema_path; the recover role's recover_schema_path) and ")
    elif values["schema"]:
        schema, schema_source = values["schema"], "config"
    else:
        package = None if config else _package_schema(project_dir)
        if package:
            schema, schema_source = package, "package.json"
        else:
            defaults = [os.path.join(project_dir, p) for p in DEFAULT_SCHEMAS]
            schema = next((p for p in defaults if os.path.exists(p)), defaults[0])
            schema_source = "default"

    if migrations_dir:
        migrations, migrations_source = os.path.normpath(os.path.join(project_dir, migrations_dir)), "option"
    elif _computed(values["migrations_path"]):
        raise _computed_refusal(shown_config, config, "migrations.path", values["migrations_path"], "")
    elif values["migrations_path"]:
        migrations, migrations_source = values["migrations_path"], "config"
    else:
        # A folder (multi-file schema) holds its migrations; a path not ending in .prisma names a folder.
        folder = os.path.isdir(schema) or not schema.endswith(".prisma")
        base = schema if folder else os.path.dirname(schema)
        migrations, migrations_source = os.path.join(base, "migrations"), "beside the schema"

    bin_dir = os.path.join(project_dir, "node_modules", ".bin")
    prisma7 = os.path.join(bin_dir, "prisma7")
    uses_prisma7 = bool(config) and os.path.basename(config).startswith("prisma7.") and os.path.exists(prisma7)
    cli = prisma7 if uses_prisma7 else os.path.join(bin_dir, "prisma")
    return ProjectLayout(project_dir, config, schema, schema_source, migrations, migrations_source, cli)
