# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a .env file the way the Prisma CLI does (dotenv + Prisma's own dotenv-expand), without executing it.

Accepted: `KEY=value`, `export KEY=value`, spaces around `=`, single, double and back quotes
(double quotes turn \\n into a newline), values over several lines when quoted, `# comments`
(an unquoted value ends at `#`, as in dotenv).

Expansion follows the copy of dotenv-expand bundled in the Prisma 6.x CLI (`tryLoadEnvs` in
@prisma/internals), checked against `prisma debug` 6.19.3: only `${VAR}` is expanded (from the
file, then the environment); `$VAR` and `${VAR:-default}` stay literal; `\\${VAR}` gives a literal
`${VAR}`; single-quoted values are expanded too (the quotes are gone by then); the value put in
place goes through JavaScript's String.replace, so `$$`, `$&`, `` $` `` and `$'` in it are
replacement patterns.
"""

from __future__ import annotations

import os
import re

_LINE = re.compile(
    r"""^\s*(?:export\s+)?([A-Za-z0-9_.-]+)(?:\s*=\s*?|:\s+?)"""
    r"""(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?"""
    r"""\s*(?:\#.*)?$""",
    re.MULTILINE,
)
# JS `.` does not match line terminators.
_REF = re.compile(r"([^\n\r\u2028\u2029]?\$\{(?:[a-zA-Z0-9_]+)?\})")
_REF_PARTS = re.compile(r"([^\n\r\u2028\u2029]?)\$\{([a-zA-Z0-9_]+)?\}")
_JS_REPLACEMENT = re.compile(r"\$([$&`'])")


def parse_dotenv(text: str, environ: dict | None = None) -> dict:
    """Parse .env text into {name: value}; later definitions win, as in dotenv."""
    environ = os.environ if environ is None else environ
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    values: dict = {}
    for match in _LINE.finditer(text):
        key, raw = match.group(1), (match.group(2) or "").strip()
        quote = raw[:1] if raw[:1] in ("'", '"', "`") and raw[-1:] == raw[:1] and len(raw) >= 2 else ""
        value = raw[1:-1] if quote else raw
        if raw[:1] == '"':  # as dotenv: whenever the value starts with a double quote
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        values[key] = value
    return {key: _expand(value, values, environ, (key,)) for key, value in values.items()}


def _expand(value: str, raw: dict, environ, stack: tuple) -> str:
    # The file's own values first: the module's environment is Ansible's, not the app's. A name
    # already being expanded (a loop, on which the Prisma CLI overflows its stack) is not expanded again.
    result = value
    for token in _REF.findall(value):
        prefix, name = _REF_PARTS.match(token).groups()
        if prefix == "\\":
            find, replacement = token, token.replace("\\$", "$", 1)
        else:
            find = token[len(prefix):]
            if name in raw and name not in stack:
                replacement = _expand(raw[name], raw, environ, stack + (name,))
            elif name in environ:
                replacement = environ[name]
            else:
                replacement = ""
        result = _js_replace_first(result, find, replacement)
    return result


def _js_replace_first(text: str, find: str, replacement: str) -> str:
    """JavaScript's text.replace(find, replacement) with a string pattern: first occurrence only."""
    index = text.find(find)
    if index < 0:
        return text

    def pattern(match: re.Match) -> str:
        kind = match.group(1)
        if kind == "$":
            return "$"
        if kind == "&":
            return find
        if kind == "`":
            return text[:index]
        return text[index + len(find):]

    return text[:index] + _JS_REPLACEMENT.sub(pattern, replacement) + text[index + len(find):]
