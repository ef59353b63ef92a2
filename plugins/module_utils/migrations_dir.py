# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local side of the history: a Prisma migrations folder, read exactly as the Prisma CLI reads it.

- every subdirectory (not a symlink, as Node's Dirent.isDirectory()) is a migration, with or
  without a migration.sql;
- names are ordered with JavaScript's String.prototype.localeCompare (ICU root collation),
  which is not byte order: `_` sorts before digits, letters ignore case first;
- scripts are read as UTF-8 with invalid bytes replaced (fs.readFile 'utf-8') and hashed with
  sha256; a stored checksum also matches the CRLF->LF and LF->CRLF forms of the script.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass, field

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

LOCKFILE = "migration_lock.toml"
# The only provider this collection handles; the lockfile must name it verbatim (P3019 otherwise).
EXPECTED_PROVIDER = "postgresql"
_PROVIDER_PREFIX = "provider = "
SCRIPT = "migration.sql"

# ICU root collation order of printable ASCII at the primary level (letters compare case-blind).
_ASCII_PRIMARY_ORDER = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz"
_PRIMARY = {ch: i for i, ch in enumerate(_ASCII_PRIMARY_ORDER)}
_NON_ASCII_BASE = len(_ASCII_PRIMARY_ORDER) + 1


def _char_weights(ch: str) -> tuple:
    """(primary, secondary, tertiary) weights of one character, approximating ICU's root collation."""
    decomposed = unicodedata.normalize("NFD", ch)
    base = decomposed[0]
    accents = decomposed[1:]
    lower = base.lower()
    primary = _PRIMARY.get(lower)
    if primary is None:
        primary = _NON_ASCII_BASE + ord(lower)
    secondary = tuple(ord(a) for a in accents)
    tertiary = 0 if base == lower else 1  # lower case before upper case
    return primary, secondary, tertiary


def _char_key(ch: str) -> tuple:
    """One character's weights as strings, so whole keys compare as plain (fast) strings.

    Secondary weights start with \x01 so that "no accent" sorts before any accent, as tuples would.
    """
    primary, secondary, tertiary = _char_weights(ch)
    return (chr(min(primary + 32, 0x10FFFF)), "\x01" + "".join(chr(a + 2) for a in secondary), "1" if tertiary else "0")


_ASCII_KEYS = {chr(c): _char_key(chr(c)) for c in range(128)}
_ASCII_PRIMARY = str.maketrans({ch: key[0] for ch, key in _ASCII_KEYS.items()})
_ASCII_TERTIARY = str.maketrans({ch: key[2] for ch, key in _ASCII_KEYS.items()})
_KEY_CACHE: dict = {}


def prisma_sort_key(name: str) -> tuple:
    """Sort key equal to JS `a.localeCompare(b)` ordering for migration folder names.

    Compared level by level over the whole name, like ICU: base letters, then accents, then case.
    """
    if name.isascii():  # the common case, done with str.translate for 5,000-folder histories
        return (name.translate(_ASCII_PRIMARY), "\x01" * len(name), name.translate(_ASCII_TERTIARY), name)
    keys = []
    for ch in name:
        key = _KEY_CACHE.get(ch)
        if key is None:
            key = _KEY_CACHE[ch] = _char_key(ch)
        keys.append(key)
    return ("".join(k[0] for k in keys), "".join(k[1] for k in keys), "".join(k[2] for k in keys), name)


def script_checksum(script: str) -> str:
    """The checksum Prisma stores: sha256 of the script as read, lower-case hex."""
    return hashlib.sha256(script.encode("utf-8")).hexdigest()


def _legacy_hex(digest: bytes) -> str:
    # Checksums written by old engines rendered each byte without zero padding (engines#1887).
    return "".join("%x" % b for b in digest)


def checksum_matches(script: str, stored: str | None) -> bool:
    """True when the stored checksum matches the script, with Prisma's line-ending tolerance."""
    if not stored:
        return False
    variants = (script, script.replace("\r\n", "\n"), script.replace("\n", "\r\n"))
    for variant in variants:
        digest = hashlib.sha256(variant.encode("utf-8")).digest()
        if digest.hex() == stored:
            return True
        if len(stored) != 64 and _legacy_hex(digest) == stored:
            return True
    return False


@dataclass
class LocalMigration:
    name: str
    path: str
    script: str | None = field(default=None, repr=False)
    read_error: str | None = None

    @property
    def checksum(self) -> str | None:
        return script_checksum(self.script) if self.script is not None else None


@dataclass
class MigrationsDir:
    path: str
    migrations: list
    provider: str | None
    lockfile_present: bool

    @property
    def names(self) -> list:
        return [m.name for m in self.migrations]

    def get(self, name: str) -> LocalMigration | None:
        for migration in self.migrations:
            if migration.name == name:
                return migration
        return None


def read_lockfile_provider(text: str) -> str | None:
    """The provider Prisma reads from migration_lock.toml, or None when no line starts with `provider`.

    As the schema engine does (checked on 6.19.3 and 7.10.1): the first line that starts with `provider` (an
    indented one does not), minus a leading `provider = ` and any `"` at either end, nothing else. So
    `provider="postgresql"` reads as `provider="postgresql` and `provider = 'postgresql'` as `'postgresql'`: both
    differ from postgresql, and deploy refuses them with P3019.
    """
    for line in text.split("\n"):  # Rust's str::lines(): \n or \r\n only, not str.splitlines()' other breaks
        if line.endswith("\r"):
            line = line[:-1]
        if line.startswith("provider"):
            if line.startswith(_PROVIDER_PREFIX):
                line = line[len(_PROVIDER_PREFIX):]
            return line.strip('"')
    return None


def _lenient_provider(value: str) -> str:
    """What a malformed provider line meant (quotes, spaces, `provider`, `=` dropped): only to word the advice."""
    value = value.strip()
    if value.startswith("provider"):
        value = value[len("provider"):].lstrip(" \t=")
    return value.split("#")[0].strip().strip("\"'").lower()


def provider_finding(provider: str | None, lockfile_present: bool, path: str | None = None) -> dict | None:
    """P3019: why `prisma migrate deploy` refuses this migrations folder on PostgreSQL, or None when it does not.

    provider is read_lockfile_provider()'s value. No lockfile at all is fine (Prisma checks only a lockfile that
    exists); a lockfile without a provider line is refused too (Prisma reads `<PROVIDER NOT FOUND>`).
    """
    if not lockfile_present or provider == EXPECTED_PROVIDER:
        return None
    where = "%s in %s" % (LOCKFILE, path) if path else LOCKFILE
    refusal = ("prisma migrate deploy refuses with P3019 (and so do migrate status and migrate resolve), because %s"
               % where)
    if provider is None:
        said = "has no line starting with provider"
    else:
        said = "names provider %s" % json.dumps(provider)
    if provider is None or _lenient_provider(provider) in (EXPECTED_PROVIDER, "postgres"):
        # Most likely a PostgreSQL history whose lockfile line was edited by hand: Prisma compares it verbatim.
        advice = ("where Prisma wants exactly provider = \"postgresql\"; if these migrations were written for "
                  "PostgreSQL, write that line as it is, otherwise generate a PostgreSQL history (a new baseline "
                  "with prisma migrate diff or migrate dev on a PostgreSQL database)")
    else:
        advice = ("so these migrations were written for another database and cannot be applied to PostgreSQL; "
                  "generate a PostgreSQL history (a new baseline with prisma migrate diff --from-empty --to-schema "
                  "and the schema file (6.x: --to-schema-datamodel), or prisma migrate dev on a PostgreSQL database, "
                  "then migrate resolve --applied on this database)")
    message = "%s %s, %s, and never run prisma db push on production." % (refusal, said, advice)
    return {"code": "P3019", "lock_provider": provider, "expected": EXPECTED_PROVIDER, "message": message}


def read_migrations_dir(path: str, read_scripts: bool = True) -> MigrationsDir:
    """Read a migrations folder; raise PrismaOpsError when it is missing or unreadable."""
    if not os.path.exists(path):
        raise PrismaOpsError("migrations_dir %s does not exist on this host: point it at the app's prisma/migrations "
                             "folder (the one holding migration_lock.toml)" % path)
    if not os.path.isdir(path):
        raise PrismaOpsError("migrations_dir %s is not a directory" % path)
    try:
        entries = list(os.scandir(path))
    except PermissionError:
        raise PrismaOpsError("migrations_dir %s is not readable by this user: run the task with become, or as the app user" % path)
    provider = None
    lockfile = os.path.join(path, LOCKFILE)
    lockfile_present = os.path.isfile(lockfile)
    if lockfile_present:
        try:
            with open(lockfile, "rb") as handle:
                provider = read_lockfile_provider(handle.read().decode("utf-8", errors="replace"))
        except OSError:
            provider = None
    migrations = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        migration = LocalMigration(name=entry.name, path=entry.path)
        if read_scripts:
            script_path = os.path.join(entry.path, SCRIPT)
            try:
                with open(script_path, "rb") as handle:
                    migration.script = handle.read().decode("utf-8", errors="replace")
            except FileNotFoundError:
                migration.read_error = "no %s in this folder" % SCRIPT
            except OSError as exc:
                migration.read_error = "%s cannot be read: %s" % (SCRIPT, exc.strerror or exc)
        migrations.append(migration)
    migrations.sort(key=lambda m: prisma_sort_key(m.name))
    return MigrationsDir(path=path, migrations=migrations, provider=provider, lockfile_present=lockfile_present)
