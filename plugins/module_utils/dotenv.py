# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a .env file the way the Prisma CLI does (dotenv + dotenv-expand), without executing it.

Accepted: `KEY=value`, `export KEY=value`, spaces around `=`, single, double and back quotes
(double quotes turn \\n into a newline), values over several lines when quoted, `# comments`
(an unquoted value ends at `#`, as in dotenv), and `${VAR}` / `$VAR` expansion from earlier keys
or the environment, except inside single quotes.
"""

from __future__ import annotations

import os
import re

_LINE = re.compile(
    r"""^\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)"""
    r"""(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?"""
    r"""\s*(?:\#.*)?$""",
    re.MULTILINE,
)
_EXPAND = re.compile(r"(\\)?\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def parse_dotenv(text: str, environ: dict | None = None) -> dict:
    """Parse .env text into {name: value}; later definitions win, as in dotenv."""
    environ = os.environ if environ is None else environ
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    values: dict = {}
    quoting: dict = {}
    for match in _LINE.finditer(text):
        key, raw = match.group(1), (match.group(2) or "").strip()
        quote = raw[:1] if raw[:1] in ("'", '"', "`") and raw[-1:] == raw[:1] and len(raw) >= 2 else ""
        value = raw[1:-1] if quote else raw
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        values[key] = value
        quoting[key] = quote
    expanded: dict = {}
    for key, value in values.items():
        if quoting[key] == "'":
            expanded[key] = value
        else:
            expanded[key] = _expand(value, expanded, values, environ)
    return expanded


def _expand(value: str, done: dict, raw: dict, environ) -> str:
    def substitute(match: re.Match) -> str:
        if match.group(1):
            return match.group(0)[1:]  # \$ stays a literal dollar
        name = match.group(2) or match.group(4)
        default = match.group(3)
        # The file's own values first: the module's environment is Ansible's, not the app's.
        if name in done:
            return done[name]
        if name in raw:
            return raw[name]
        if name in environ:
            return environ[name]
        return default if default is not None else ""

    return _EXPAND.sub(substitute, value)
