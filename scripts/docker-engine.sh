#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock, for the lab (docs/lab.md).
#
# Installs docker.io and debootstrap from Debian when missing, and starts dockerd in the
# background when nothing answers (there is no systemd here). The daemon runs with
# --iptables=false --bridge=none: no bridge network exists, so every container must use
# --network host and talk over loopback only. Its data root and log live in the lab cache
# (outside the checkout) so images survive `git clean` and a new clone. Safe to rerun.
#
# Environment: LAB_CACHE (default ~/.cache/prisma_ops_migrate/lab), DOCKER_WAIT (seconds, 60).
set -euo pipefail

cache=${LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prisma_ops_migrate/lab}
wait_seconds=${DOCKER_WAIT:-60}
log=$cache/dockerd.log

die() { echo "docker-engine: $*" >&2; exit 1; }

# The Debian client matches the Debian daemon; another docker earlier on PATH may not.
docker_cli() {
  if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi
}

engine_answers() { docker_cli info >/dev/null 2>&1; }

# Closes every descriptor above stderr in this shell, so a daemon started from it holds none.
close_inherited_fds() {
  local fd
  for fd in "/proc/$$/fd"/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

if engine_answers; then
  exit 0
fi

missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "needs root to install ${missing[*]} (apt-get)"
  echo "docker-engine: installing ${missing[*]}"
  apt_log=$(mktemp)
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
    # A stale package index is the usual cause on a fresh machine: refresh once and retry.
    DEBIAN_FRONTEND=noninteractive apt-get update >>"$apt_log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$apt_log" 2>&1 \
      || { tail -n 20 "$apt_log" >&2; die "apt-get install ${missing[*]} failed (log above)"; }
  fi
  rm -f "$apt_log"
fi

[ "$(id -u)" = 0 ] || die "the Docker engine is not running and starting dockerd needs root"
mkdir -p "$cache/docker"

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "docker-engine: starting dockerd (log: $log)"
  # setsid + nohup: the daemon outlives this script and the make that called it. It must not
  # inherit our callers' descriptors either: holding lab.sh's lock fd, it kept the lab locked
  # for as long as it ran (CI waited 20 minutes on the next `lab.sh up`).
  close_inherited_fds
  setsid nohup /usr/sbin/dockerd \
    --iptables=false --ip6tables=false --bridge=none \
    --data-root "$cache/docker" --pidfile "$cache/dockerd.pid" \
    --host unix:///var/run/docker.sock \
    >>"$log" 2>&1 </dev/null &
fi

for _attempt in $(seq 1 "$wait_seconds"); do
  if engine_answers; then
    exit 0
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    tail -n 15 "$log" >&2 || true
    die "dockerd exited at start-up, so Docker cannot run on this machine (reason in the log lines above, full log $log). Without Docker the lab is unavailable; make demo will fall back to a local host with a throwaway PostgreSQL."
  fi
  sleep 1
done
tail -n 15 "$log" >&2 || true
die "dockerd did not answer within ${wait_seconds}s (log: $log)"
