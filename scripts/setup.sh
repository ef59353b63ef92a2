#!/usr/bin/env bash
# Prepares a checkout for lint and tests: Debian packages, .venv, the Prisma CLI oracle, the
# .collections symlink and ansible-test's pip bootstrap stand-in. Safe to rerun: every step
# checks before it acts, and a rerun with nothing to do takes well under a second or two.
#
# Environment:
#   PYTHON          interpreter used to create .venv (default: python3)
#   SETUP_SKIP_APT  set to 1 to skip the Debian package check (e.g. a machine without dpkg)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
PYTHON=${PYTHON:-python3}
VENV=$root/.venv

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# --- (a) Debian packages ---------------------------------------------------------------------
# Each entry is "alternative|alternative": satisfied when any alternative is installed or is
# provided by an installed package (NodeSource's nodejs provides npm, for example). The first
# alternative is what gets installed when none is present.
DEB_REQUIREMENTS=(
  "postgresql-15"                          # server binaries: /usr/lib/postgresql/15/bin
  "postgresql-client|postgresql-client-15" # psql, pg_dump, pg_restore
  "nodejs"                                 # runs the Prisma CLI oracle
  "npm"                                    # installs the Prisma CLI oracle
  "git"                                    # ansible-test, the sanity tree copy
  "shellcheck"                             # ansible-test sanity's shellcheck test
  "chromium"                               # headless test of the drift_check HTML report
)

check_debian_packages() {
  if [ "${SETUP_SKIP_APT:-0}" = 1 ]; then
    log "SETUP_SKIP_APT=1: not checking Debian packages"
    return
  fi
  command -v dpkg-query >/dev/null || die "dpkg-query not found: this setup expects Debian (bookworm); set SETUP_SKIP_APT=1 to skip"
  # One dpkg-query call lists every installed package and what it provides.
  local have
  have=$(dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\n' 2>/dev/null \
    | awk -F'|' '$1 ~ /^ii/ { print $2; n = split($3, p, /, */); for (i = 1; i <= n; i++) { sub(/ .*/, "", p[i]); if (p[i] != "") print p[i] } }' \
    | sort -u)
  local missing=() req alt ok
  for req in "${DEB_REQUIREMENTS[@]}"; do
    ok=0
    IFS='|' read -r -a alts <<<"$req"
    for alt in "${alts[@]}"; do
      if grep -qxF "$alt" <<<"$have"; then ok=1; break; fi
    done
    [ "$ok" = 1 ] || missing+=("${alts[0]}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    local cmd="apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" = 0 ]; then
      log "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      $cmd </dev/null
    else
      printf 'setup: missing Debian packages: %s\nRun as root:\n  apt-get update && %s\n' "${missing[*]}" "$cmd" >&2
      exit 1
    fi
  fi
  [ -x /usr/lib/postgresql/15/bin/initdb ] || die "postgresql-15 is installed but /usr/lib/postgresql/15/bin/initdb is missing"
}

# --- (b) .venv with the pinned tooling --------------------------------------------------------
setup_venv() {
  local key stamp
  key=$(cat requirements/dev.txt requirements/constraints.txt | sha256sum | cut -c1-16)
  stamp=$VENV/.setup-$key
  if [ -f "$stamp" ] && "$VENV/bin/python" -c '' 2>/dev/null; then
    return
  fi
  if ! "$VENV/bin/python" -c '' 2>/dev/null; then
    log "creating .venv with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  log "installing requirements/dev.txt into .venv"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    -r requirements/dev.txt -c requirements/constraints.txt
  rm -f "$VENV"/.setup-*
  touch "$stamp"
}

# --- (c) the real Prisma CLI, cached outside the checkout --------------------------------------
setup_prisma() {
  scripts/install-prisma-oracle.sh
}

# --- (d) FQCNs resolve to the working tree ------------------------------------------------------
setup_collection_link() {
  local dir=.collections/ansible_collections/prisma_ops link=migrate target=../../..
  mkdir -p "$dir"
  if [ "$(readlink "$dir/$link" 2>/dev/null)" != "$target" ]; then
    rm -rf "${dir:?}/$link"
    ln -s "$target" "$dir/$link"
    log "linked $dir/$link -> $target"
  fi
}

# --- (e) ansible-test's pip bootstrap, which it would otherwise download from a host we cannot reach
setup_get_pip() {
  local req pip_version cache
  req=$("$VENV/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py"))')
  pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',*$/\1/p" "$req" | head -n1)
  [ -n "$pip_version" ] || die "cannot find ansible-test's pinned pip version in $req"
  cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
  local content
  content=$(cat <<'PY'
"""Stand-in for get-pip.py, written by prisma_ops.migrate scripts/setup.sh.

ansible-test runs `python get_pip_X_Y.py <pip install args>` to bootstrap pip in the virtual
environments it creates, and would otherwise download this script from ci-files.testing.ansible.com,
which this machine cannot reach. This bootstraps pip from ensurepip, then lets pip install the
requested version from the package index. See ../shared/notes/ansible-test.md.
"""
import ensurepip
import os
import subprocess
import sys

CERT = "/etc/ssl/certs/ca-certificates.crt"


def main():
    ensurepip.bootstrap(upgrade=True)
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    cmd = [sys.executable, "-m", "pip", "install"]
    if os.path.exists(CERT):
        cmd += ["--cert", CERT]
    sys.exit(subprocess.call(cmd + args))


if __name__ == "__main__":
    main()
PY
)
  if [ ! -f "$cache" ] || [ "$(cat "$cache")" != "$content" ]; then
    mkdir -p "$(dirname "$cache")"
    printf '%s\n' "$content" >"$cache"
    log "wrote ansible-test pip bootstrap stand-in $cache"
  fi
}

check_debian_packages
setup_venv
setup_prisma
setup_collection_link
setup_get_pip
log "ok"
