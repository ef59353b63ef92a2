# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a .env file the way the Prisma CLI does (dotenv + Prisma's own dotenv-expand), without executing it.

Accepted: `KEY=value`, `export KEY=value`, spaces around `=`, single, double and back quotes
(double quotes turn \\n into a newline), values over several lines when quoted, `# comments`.
An unquoted value ends at the first `#`, with or without a space before it: that is what dotenv
16.6.1 (the copy in the Prisma 6.19.3 CLI, and the `dotenv/config` a Prisma 7 `prisma.config.ts`
loads) really does, whatever its README says. So `DATABASE_URL=postgresql://u:pa#ss@h/db` is
`postgresql://u:pa` for Prisma too; read_env_value refuses such a cut value instead of using it
or printing what is left of it.

read_env_text is the one way the collection opens a .env file: regular files only (a FIFO or a
device such as /dev/zero is refused, never waited on), at most MAX_ENV_FILE_BYTES.

Expansion follows the copy of dotenv-expand bundled in the Prisma 6.x CLI (`tryLoadEnvs` in
@prisma/internals), checked against `prisma debug` 6.19.3: only `${VAR}` is expanded (from the
file, then the environment); `$VAR` and `${VAR:-default}` stay literal; `\\${VAR}` gives a literal
`${VAR}`; single-quoted values are expanded too (the quotes are gone by then); the value put in
place goes through JavaScript's String.replace, so `$$`, `$&`, `` $` `` and `$'` in it are
replacement patterns.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

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


MAX_ENV_FILE_BYTES = 1024 * 1024
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _scan(text: str) -> tuple:
    """({name: raw value}, {name: the rest of the line} for an unquoted value dotenv cut at a `#` glued to it).

    Later definitions win, as in dotenv.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    values: dict = {}
    cut: dict = {}
    for match in _LINE.finditer(text):
        key, raw = match.group(1), (match.group(2) or "").strip()
        quote = raw[:1] if raw[:1] in ("'", '"', "`") and raw[-1:] == raw[:1] and len(raw) >= 2 else ""
        value = raw[1:-1] if quote else raw
        if raw[:1] == '"':  # as dotenv: whenever the value starts with a double quote
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        values[key] = value
        # `X=abc # note` is a comment; in `X=pa#ss` the `#` was almost surely meant as part of the value.
        end = match.end(2) if match.group(2) is not None else -1
        if not quote and raw and 0 <= end < len(text) and text[end] == "#" and not text[end - 1].isspace():
            cut[key] = text[end:match.end()]
        else:
            cut.pop(key, None)
    return values, cut


def parse_dotenv(text: str, environ: dict | None = None) -> dict:
    """Parse .env text into {name: value}; later definitions win, as in dotenv."""
    environ = os.environ if environ is None else environ
    values, _cut = _scan(text)
    return {key: _expand(value, values, environ, (key,)) for key, value in values.items()}


def read_env_text(path: str) -> str:
    """The text of a .env file on this host: a regular file (symlinks to one are fine), at most MAX_ENV_FILE_BYTES.

    Opened non-blocking, so a FIFO is seen (and refused) instead of waited on forever; fstat decides on the
    opened file itself, so nothing can be swapped in between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise PrismaOpsError("env_file %s does not exist on this host: point env_file at the app's .env "
                             "(e.g. /opt/APP/repo/Backend/.env)" % path)
    except PermissionError:
        raise PrismaOpsError("env_file %s is not readable by this user: run the task with become, or as the app user" % path)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise PrismaOpsError("env_file %s is a directory, not a .env file" % path)
        raise PrismaOpsError("env_file %s cannot be read: %s" % (path, exc.strerror or exc))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((text for test, text in _KINDS if test(info.st_mode)), "not a regular file")
            raise PrismaOpsError("env_file %s is %s, not a .env file: only a regular file is read (a pipe or device "
                                 "could block or never end); point env_file at the app's .env file itself" % (path, kind))
        if info.st_size > MAX_ENV_FILE_BYTES:
            raise PrismaOpsError("env_file %s is %d bytes, more than the %d a .env file may have here: point env_file "
                                 "at the app's .env file" % (path, info.st_size, MAX_ENV_FILE_BYTES))
        chunks = []
        size = 0
        # Bounded even if the file grows while being read (or lies about its size, as /proc files do).
        while size <= MAX_ENV_FILE_BYTES:
            chunk = os.read(fd, MAX_ENV_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_ENV_FILE_BYTES:
            raise PrismaOpsError("env_file %s holds more than %d bytes, more than a .env file may have here: point "
                                 "env_file at the app's .env file" % (path, MAX_ENV_FILE_BYTES))
    except OSError as exc:
        raise PrismaOpsError("env_file %s cannot be read: %s" % (path, exc.strerror or exc))
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace")


def read_env_value(path: str, variable: str) -> str:
    """The value of one variable from a .env file on this host; the file is parsed, never executed.

    No message shows any value: the names only, since any of them may be a secret.
    """
    text = read_env_text(path)
    values = parse_dotenv(text)
    if variable not in values:
        names = ", ".join(sorted(values)) or "no variables"
        raise PrismaOpsError("env_file %s does not define %s (it defines: %s): set env_var to the variable that "
                             "holds the database URL" % (path, variable, names))
    # A `#` glued to the value with an @ after it cut the URL inside user:password@: dotenv hands Prisma a broken
    # URL, and what is left of the password would show in every message about it. (A glued comment after a whole
    # URL, `...@h/db#prod`, is left as dotenv reads it.)
    if "@" in _scan(text)[1].get(variable, ""):
        raise PrismaOpsError("%s in %s has an unquoted '#' inside its value: dotenv, and so Prisma, reads the rest "
                             "of the line as a comment and gets a cut URL. Write # as %%23 in the URL's password "
                             "(in a URL an unencoded # ends it, quoted or not)" % (variable, path))
    if not values[variable].strip():
        raise PrismaOpsError("%s in %s is empty" % (variable, path))
    return values[variable]


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
