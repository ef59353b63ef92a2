#!/usr/bin/env bash
# Runs `ansible-test sanity` with no ignore file on a fresh copy of the checkout.
#
# ansible-test must run from .../ansible_collections/<namespace>/<name>/ and resolves symlinks,
# so the checkout is copied (not linked) to .build/sanity/ansible_collections/prisma_ops/migrate.
# Only what git tracks or does not ignore is copied (git ls-files -co --exclude-standard), and
# the copy is rebuilt on every run so files deleted or renamed in the checkout cannot linger.
# The copy gets an empty git repository of its own (see below), so ansible-test's view of it
# is exactly the checkout's.
#
# Extra arguments go to ansible-test (e.g. `scripts/sanity.sh --test pylint`).
# Environment:
#   SANITY_PYTHON  `all` (default): every test on the controller Python, plus compile and import
#                  on every target Python 3.8 - 3.13 found on PATH or under ~/.pyenv/versions;
#                  or one version such as 3.11 to run everything on that Python only.
#   SANITY_MODE    --local (default: runs in .venv; each sanity test still gets its own cached
#                  virtualenv under ~/.ansible/test/venv) or --venv (also delegates ansible-test
#                  itself into a fresh virtualenv, about 9 s slower per run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
dest=$root/.build/sanity/ansible_collections/prisma_ops/migrate
python_version=${SANITY_PYTHON:-all}
mode=${SANITY_MODE:---local}

[ -x "$root/.venv/bin/ansible-test" ] || { echo "sanity: .venv is missing: run make setup" >&2; exit 1; }

if compgen -G "tests/sanity/ignore-*.txt" >/dev/null; then
  echo "sanity: tests/sanity/ignore-*.txt exists; this project runs sanity with no ignore file" >&2
  exit 1
fi

rm -rf "$dest"
mkdir -p "$dest"
# -z keeps odd file names intact; tracked files deleted from the working tree are skipped.
git ls-files -z -co --exclude-standard --deduplicate \
  | while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done \
  | xargs -0 --no-run-if-empty cp -a --parents -t "$dest"

cd "$dest"
# The copy sits inside this checkout's git work tree, where .build/ is ignored: ansible-test would
# find the outer repository and see no files at all. An empty repository of its own makes the copy
# the content root; ansible-test then lists its files with git ls-files --cached --others --exclude-standard.
git init -q .
export PATH="$root/.venv/bin:$PATH"
# ansible-test calls pip in the environments it creates; keep it on the machine's CA bundle.
[ -f /etc/ssl/certs/ca-certificates.crt ] && export PIP_CERT=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}

python_args=()
if [ "$python_version" = all ]; then
  # ansible-test looks for pythonX.Y on PATH; pyenv keeps versions it does not activate out of
  # PATH, so add their bin directories. Versions found nowhere are skipped with a warning.
  for v in 3.8 3.9 3.10 3.11 3.12 3.13; do
    command -v "python$v" >/dev/null 2>&1 && "python$v" -c '' >/dev/null 2>&1 && continue
    for d in "${PYENV_ROOT:-$HOME/.pyenv}/versions/$v".*/bin; do
      if [ -x "$d/python$v" ]; then PATH="$PATH:$d"; break; fi
    done
  done
else
  python_args=(--python "$python_version")
fi
exec ansible-test sanity "$mode" "${python_args[@]}" --color no "$@"
