#!/usr/bin/env bash
# PID 1 of a lab container (all run with --network host, so everything binds to 127.0.0.1 on the
# ports given): LAB_PG_PORT starts this container's PostgreSQL 15, LAB_SSH_PORT runs sshd in the
# foreground. A container with neither (the containerised host's app container) just stays up.
set -euo pipefail

conf=/etc/postgresql/15/main/postgresql.conf
if [ -n "${LAB_PG_PORT:-}" ]; then
  sed -ri "s/^#?port = .*/port = ${LAB_PG_PORT}/; s/^#?listen_addresses = .*/listen_addresses = '127.0.0.1'/" "$conf"
  # Password auth over TCP for every role, as on a real host; local socket stays peer.
  grep -q '^host all all 127.0.0.1/32 scram-sha-256' /etc/postgresql/15/main/pg_hba.conf \
    || echo 'host all all 127.0.0.1/32 scram-sha-256' >>/etc/postgresql/15/main/pg_hba.conf
  pg_ctlcluster 15 main start
fi

stop() {
  [ -z "${LAB_PG_PORT:-}" ] || pg_ctlcluster 15 main stop -m fast || true
  exit 0
}
trap stop TERM INT

if [ -n "${LAB_SSH_PORT:-}" ]; then
  mkdir -p /run/sshd
  # Not exec: PID 1 must stay this script so that `docker stop` shuts PostgreSQL down cleanly.
  /usr/sbin/sshd -D -p "$LAB_SSH_PORT" -o ListenAddress=127.0.0.1 &
else
  sleep infinity &
fi
wait "$!"
