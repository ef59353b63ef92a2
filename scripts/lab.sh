#!/usr/bin/env bash
# The lab: several test hosts as containers, each with sshd and PostgreSQL on its own loopback port
# and one Prisma failure scenario (docs/lab.md).
#
#   scripts/lab.sh up       build what is missing (cached), start the hosts, write lab/inventory.yml
#   scripts/lab.sh down     remove the lab containers and the inventory (keeps the cached images)
#   scripts/lab.sh reset    down, then up: every scenario built again from scratch
#   scripts/lab.sh status   each host, its container state, and whether ssh answers (exit 1 if not all)
#
# Every container runs with --network host and binds to 127.0.0.1 only: the engine has no bridge.
# Caches live outside the checkout, in LAB_CACHE (default ~/.cache/prisma_ops_migrate/lab):
# the debootstrap tarball, the engine's data root, the SSH key pair, build logs.
# Environment: LAB_CACHE, LAB_DEBIAN_MIRROR, PRISMA_ORACLE_HOME.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
cache=${LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prisma_ops_migrate/lab}
oracle=${PRISMA_ORACLE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/prisma_ops_migrate/prisma-6.19.3}
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
inventory=$repo/lab/inventory.yml
key=$cache/ssh/id_ed25519
base_image=prisma-ops-lab-base:bookworm
label=prisma-ops-lab
app_dir=/opt/schooliat/repo/Backend
failing=20240301000000_grades

# name  scenario  ssh-port  pg-port  expected-state  expected-verdict  expected-action
hosts=(
  "lab-applied     applied_but_stuck   22201 25431 deploy_blocked applied     resolve_applied"
  "lab-notapplied  not_applied         22202 25432 deploy_blocked not_applied resolve_rolled_back"
  "lab-partial     partial             22203 25433 deploy_blocked partial     stop"
  "lab-byhand      table_made_by_hand  22204 25434 deploy_blocked partial     stop"
  "lab-pending     pending_only        22205 25435 pending        none        deploy"
  "lab-healthy     healthy             22206 25436 in_sync        none        none"
  "lab-docker      containerised       22207 25437 deploy_blocked not_applied resolve_rolled_back"
)

die() { echo "lab: $*" >&2; exit 1; }
say() { echo "lab: $*"; }

# The Debian client matches the Debian daemon; another docker earlier on PATH may not.
docker() {
  if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else command docker "$@"; fi
}

# sha256 over the contents and relative paths of the given files and directories.
hash_inputs() {
  local path
  for path in "$@"; do
    if [ -d "$path" ]; then
      (cd "$path" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    else
      sha256sum "$path" | sed "s#  .*/#  #"
    fi
  done | sha256sum | cut -c1-12
}

ssh_args() {
  local port=$1
  printf '%s\n' -i "$key" -p "$port" -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
}

ssh_answers() {
  local port=$1 args
  mapfile -t args < <(ssh_args "$port")
  ssh "${args[@]}" root@127.0.0.1 true >/dev/null 2>&1
}

# --- base image: debootstrap once, tarball cached, imported when the engine lacks it ----------
build_base() {
  if docker image inspect "$base_image" >/dev/null 2>&1; then return 0; fi
  local tarball=$cache/base-bookworm-minbase.tar rootfs=$cache/rootfs.tmp mnt
  if [ ! -s "$tarball" ]; then
    say "debootstrap bookworm minbase (a few minutes; log: $cache/logs/debootstrap.log)"
    # A killed earlier run can leave proc/sys mounted inside the tree: unmount before removing.
    while read -r mnt; do umount -l "$mnt" || true; done < <(findmnt -rn -o TARGET | grep -F "$rootfs/" | sort -r)
    rm -rf --one-file-system "$rootfs"
    debootstrap --variant=minbase --include=python3,openssh-server,sudo bookworm "$rootfs" "$mirror" \
      >"$cache/logs/debootstrap.log" 2>&1 \
      || { tail -n 15 "$cache/logs/debootstrap.log" >&2; die "debootstrap failed (log: $cache/logs/debootstrap.log)"; }
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf --one-file-system "$rootfs"
  fi
  say "importing $base_image"
  docker import - "$base_image" <"$tarball" >/dev/null
}

# --- lab images: tag = hash of everything that goes into them --------------------------------
lab_image=""
docker_image=""
build_images() {
  local base_id key_hash context
  [ -f "$oracle/package-lock.json" ] || die "the Prisma CLI oracle is missing at $oracle: run make setup"
  base_id=$(docker image inspect -f '{{.Id}}' "$base_image")
  key_hash=$( { hash_inputs "$repo/lab/image" "$repo/tests/harness/prisma_files/unref-long-timers.js" \
                  "$oracle/package-lock.json"; echo "$base_id"; } | sha256sum | cut -c1-12)
  lab_image=prisma-ops-lab:$key_hash
  docker_image=prisma-ops-lab-docker:$key_hash
  if ! docker image inspect "$lab_image" >/dev/null 2>&1; then
    say "building $lab_image (log: $cache/logs/build.log)"
    context=$cache/build-context
    rm -rf "$context"
    mkdir -p "$context"
    cp -a "$repo/lab/image/." "$repo/tests/harness/prisma_files/unref-long-timers.js" "$context/"
    # Hard links: same file system as the oracle cache, so no 100 MB copy.
    cp -al "$oracle/node_modules" "$context/node_modules" 2>/dev/null || cp -a "$oracle/node_modules" "$context/node_modules"
    # The legacy builder: --network host works with it and needs no buildx plugin.
    DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE=$base_image" -t "$lab_image" \
      -f "$context/Dockerfile" "$context" >"$cache/logs/build.log" 2>&1 \
      || { tail -n 20 "$cache/logs/build.log" >&2; die "building $lab_image failed (log: $cache/logs/build.log)"; }
    rm -rf "$context"
  fi
  if ! docker image inspect "$docker_image" >/dev/null 2>&1; then
    say "building $docker_image (log: $cache/logs/build-docker.log)"
    DOCKER_BUILDKIT=0 docker build --network host --build-arg "LAB_IMAGE=$lab_image" -t "$docker_image" \
      -f "$repo/lab/image/docker-host.Dockerfile" "$repo/lab/image" >"$cache/logs/build-docker.log" 2>&1 \
      || { tail -n 20 "$cache/logs/build-docker.log" >&2; die "building $docker_image failed (log: $cache/logs/build-docker.log)"; }
  fi
}

# --- the app tree every host gets (staged once per content hash) -----------------------------
stage=""
app_hash=""
stage_app() {
  local config=$repo/tests/harness/prisma_files/prisma.config.ts
  app_hash=$(hash_inputs "$repo/lab/app" "$repo/lab/scenario.sh" "$config")
  stage=$cache/stage/app-$app_hash
  [ -d "$stage" ] && return 0
  rm -rf "$cache/stage"
  mkdir -p "$stage.tmp"
  cp -a "$repo/lab/app/." "$stage.tmp/"
  # The harness's config (adapter-pg `name` fix, search_path), with the app's paths, loading .env
  # itself: with a prisma.config.ts the CLI does not read .env.
  {
    echo "// Generated by scripts/lab.sh from tests/harness/prisma_files/prisma.config.ts."
    echo "import 'dotenv/config'"
    sed -e "s#schema: 'prisma/schema.prisma'#schema: 'src/prisma/db/schema.prisma'#" \
        -e "s#path: 'prisma/migrations'#path: 'src/prisma/db/migrations'#" "$config"
  } >"$stage.tmp/prisma.config.ts"
  if ! grep -q "schema: 'src/prisma/db/schema.prisma'" "$stage.tmp/prisma.config.ts" \
     || ! grep -q "path: 'src/prisma/db/migrations'" "$stage.tmp/prisma.config.ts"; then
    die "could not adapt $config to the lab's paths (its schema or migrations line changed)"
  fi
  mv "$stage.tmp" "$stage"
}

ensure_key() {
  mkdir -p "$cache/ssh"
  chmod 0700 "$cache/ssh"
  if [ ! -f "$key" ] || [ ! -f "$key.pub" ]; then
    rm -f "$key" "$key.pub"
    ssh-keygen -q -t ed25519 -N '' -C prisma-ops-lab -f "$key"
  fi
  chmod 0600 "$key"
  cp "$key.pub" "$cache/ssh/authorized_keys"
  chmod 0600 "$cache/ssh/authorized_keys"
}

port_in_use() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

container_state() { docker inspect -f '{{.State.Status}}' "$1" 2>/dev/null || echo absent; }

# Run a container unless the right one (same images, app tree and scenario) already exists.
# Returns 0 when it was created now (the scenario must be built), 1 when it was reused.
ensure_container() {
  local name=$1 image=$2 want=$3 ports=$4 have port
  shift 4
  have=$(docker inspect -f "{{index .Config.Labels \"$label.key\"}}" "$name" 2>/dev/null || true)
  if [ -n "$have" ] && [ "$have" = "$want" ]; then
    # A matching container whose bring-up finished (/opt/lab/ready): just make sure it runs.
    if [ "$(container_state "$name")" != running ]; then docker start "$name" >/dev/null || true; fi
    if docker exec "$name" test -f /opt/lab/ready 2>/dev/null; then return 1; fi
  fi
  docker rm -f "$name" >/dev/null 2>&1 || true
  for port in $ports; do
    port_in_use "$port" && die "$name: port $port on 127.0.0.1 is already in use by another program"
  done
  docker run -d --name "$name" --hostname "$name" --network host --label "$label=1" \
    --label "$label.key=$want" --stop-timeout 20 "$@" "$image" >/dev/null
  return 0
}

wait_pg() {
  local name=$1 port=$2 attempt
  for attempt in $(seq 1 60); do
    if docker exec "$name" pg_isready -q -h 127.0.0.1 -p "$port"; then return 0; fi
    sleep 0.5
  done
  die "$name: PostgreSQL did not answer on 127.0.0.1:$port within 30 s (attempts: $attempt)"
}

copy_lab_files() {
  docker exec "$1" mkdir -p /opt/lab/app
  docker cp "$stage/." "$1:/opt/lab/app/" >/dev/null
  docker cp "$repo/lab/scenario.sh" "$1:/opt/lab/scenario.sh" >/dev/null
}

# One ordinary host: sshd, PostgreSQL and the app in one container.
up_host() {
  local name=$1 scenario=$2 ssh_port=$3 pg_port=$4 password
  if ensure_container "$name" "$lab_image" "$lab_image/$app_hash/$scenario" "$ssh_port $pg_port" \
       -e "LAB_SSH_PORT=$ssh_port" -e "LAB_PG_PORT=$pg_port" \
       -v "$cache/ssh/authorized_keys:/root/.ssh/authorized_keys:ro"; then
    wait_pg "$name" "$pg_port"
    copy_lab_files "$name"
    password=$(openssl rand -hex 16)
    # -e NAME without a value passes it from this environment: never on a command line.
    LAB_DB_PASSWORD=$password docker exec -e LAB_DB_PASSWORD -e "LAB_PG_PORT=$pg_port" "$name" /opt/lab/scenario.sh db-init
    LAB_DB_PASSWORD=$password docker exec -e LAB_DB_PASSWORD -e "LAB_PG_PORT=$pg_port" "$name" /opt/lab/scenario.sh app "$scenario"
    docker exec "$name" touch /opt/lab/ready
  else
    wait_pg "$name" "$pg_port"
  fi
}

# The containerised host: sshd in one container (with the docker CLI and the engine socket),
# PostgreSQL in a second, the app (node, prisma) in a third; reached with `docker exec`.
up_docker_host() {
  local name=$1 ssh_port=$3 pg_port=$4 password fresh=0 want
  want="$docker_image/$app_hash/containerised"
  ensure_container "$name-db" "$lab_image" "$want" "$pg_port" -e "LAB_PG_PORT=$pg_port" && fresh=1
  ensure_container "$name-app" "$lab_image" "$want" "" && fresh=1
  ensure_container "$name" "$docker_image" "$want" "$ssh_port" -e "LAB_SSH_PORT=$ssh_port" \
    -v "$cache/ssh/authorized_keys:/root/.ssh/authorized_keys:ro" \
    -v /var/run/docker.sock:/var/run/docker.sock && fresh=1
  if [ "$fresh" = 0 ]; then wait_pg "$name-db" "$pg_port"; return 0; fi
  # One part new means the scenario is rebuilt across all three.
  docker rm -f "$name-db" "$name-app" >/dev/null 2>&1
  ensure_container "$name-db" "$lab_image" "$want" "$pg_port" -e "LAB_PG_PORT=$pg_port" || true
  ensure_container "$name-app" "$lab_image" "$want" "" || true
  docker exec "$name" rm -f /opt/lab/scenario.done /opt/lab/ready
  wait_pg "$name-db" "$pg_port"
  password=$(openssl rand -hex 16)
  for part in "$name-db" "$name-app" "$name"; do copy_lab_files "$part"; done
  export LAB_DB_PASSWORD=$password
  docker exec -e LAB_DB_PASSWORD -e "LAB_PG_PORT=$pg_port" "$name-db" /opt/lab/scenario.sh db-init
  docker exec -e LAB_DB_PASSWORD -e "LAB_PG_PORT=$pg_port" "$name-app" /opt/lab/scenario.sh app not_applied
  docker exec -e LAB_DB_PASSWORD -e "LAB_PG_PORT=$pg_port" "$name" /opt/lab/scenario.sh host-files
  unset LAB_DB_PASSWORD
  for part in "$name-db" "$name-app" "$name"; do docker exec "$part" touch /opt/lab/ready; done
}

wait_ssh() {
  local name=$1 port=$2 attempt
  for attempt in $(seq 1 30); do
    if ssh_answers "$port"; then return 0; fi
    sleep 1
  done
  die "$name: sshd did not answer on 127.0.0.1:$port within 30 attempts"
}

write_inventory() {
  local line name scenario ssh_port pg_port state verdict action
  {
    echo "---"
    echo "# Generated by scripts/lab.sh up; removed by scripts/lab.sh down. Do not edit."
    echo "lab:"
    echo "  vars:"
    echo "    ansible_host: 127.0.0.1"
    echo "    ansible_user: root"
    echo "    ansible_ssh_private_key_file: $key"
    echo "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    echo "    ansible_python_interpreter: /usr/bin/python3"
    echo "    lab_app_dir: $app_dir"
    echo "    lab_env_file: $app_dir/.env"
    echo "    lab_migrations_dir: $app_dir/src/prisma/db/migrations"
    echo "    lab_schema_path: src/prisma/db/schema.prisma"
    echo "    lab_app_user: app"
    echo "    lab_backup_dir: /opt/schooliat/shared/backups"
    echo "    lab_failed_migration: $failing"
    echo "  hosts:"
    for line in "${hosts[@]}"; do
      read -r name scenario ssh_port pg_port state verdict action <<<"$line"
      echo "    $name:"
      echo "      ansible_port: $ssh_port"
      echo "      lab_scenario: $scenario"
      echo "      lab_db_port: $pg_port"
      echo "      lab_expected_state: $state"
      echo "      lab_expected_verdict: $verdict"
      echo "      lab_expected_action: $action"
      if [ "$scenario" = containerised ]; then
        echo "      lab_app_container: $name-app"
        echo "      lab_db_container: $name-db"
      fi
    done
  } >"$inventory.tmp"
  mv "$inventory.tmp" "$inventory"
}

cmd_up() {
  local line name scenario ssh_port pg_port failed=0 pids=() names=() i
  "$repo/scripts/docker-engine.sh"
  mkdir -p "$cache/logs"
  build_base
  build_images
  stage_app
  ensure_key
  # Hosts come up in parallel; each one's output goes to its own log.
  for line in "${hosts[@]}"; do
    read -r name scenario ssh_port pg_port _ <<<"$line"
    if [ "$scenario" = containerised ]; then
      up_docker_host "$name" "$scenario" "$ssh_port" "$pg_port" >"$cache/logs/$name.log" 2>&1 &
    else
      up_host "$name" "$scenario" "$ssh_port" "$pg_port" >"$cache/logs/$name.log" 2>&1 &
    fi
    pids+=("$!")
    names+=("$name")
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      failed=1
      echo "lab: ${names[$i]} failed; last lines of $cache/logs/${names[$i]}.log:" >&2
      tail -n 15 "$cache/logs/${names[$i]}.log" >&2
    fi
  done
  [ "$failed" = 0 ] || die "some hosts did not come up (see above)"
  for line in "${hosts[@]}"; do
    read -r name scenario ssh_port _ <<<"$line"
    wait_ssh "$name" "$ssh_port"
  done
  write_inventory
  say "${#hosts[@]} hosts up; inventory: lab/inventory.yml (scripts/lab.sh status)"
}

cmd_down() {
  local ids
  rm -f "$inventory"
  if ! docker info >/dev/null 2>&1; then
    say "the Docker engine is not running: no lab containers to remove"
    return 0
  fi
  ids=$(docker ps -aq --filter "label=$label=1")
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086 # one id per word
    docker rm -f $ids >/dev/null
    say "removed $(wc -w <<<"$ids") lab containers (images kept)"
  else
    say "no lab containers"
  fi
}

cmd_status() {
  local line name ssh_port all=0 answers
  docker info >/dev/null 2>&1 || die "the Docker engine is not running (scripts/docker-engine.sh starts it)"
  printf '%-16s %-20s %-6s %-10s %s\n' HOST SCENARIO SSH CONTAINER SSH_ANSWERS
  for line in "${hosts[@]}"; do
    read -r name scenario ssh_port _ <<<"$line"
    answers=no
    if ssh_answers "$ssh_port"; then answers=yes; else all=1; fi
    printf '%-16s %-20s %-6s %-10s %s\n' "$name" "$scenario" "$ssh_port" "$(container_state "$name")" "$answers"
  done
  return "$all"
}

# One lab command at a time (parallel test workers may all ask for `up`): wait, bounded, for the lock.
lock() {
  mkdir -p "$cache"
  exec 9>"$cache/lab.lock"
  flock -w 1200 9 || die "another scripts/lab.sh still holds $cache/lab.lock after 20 minutes"
}

case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  reset) lock; cmd_down; cmd_up ;;
  status) cmd_status ;;
  *) echo "usage: scripts/lab.sh up | down | reset | status" >&2; exit 2 ;;
esac
