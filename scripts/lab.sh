#!/usr/bin/env bash
# The lab: several test hosts as containers, each with sshd and PostgreSQL on its own loopback port
# and one Prisma failure scenario (docs/lab.md).
#
#   scripts/lab.sh up [GROUP]        build what is missing (cached), start the hosts, write the inventory
#   scripts/lab.sh down [GROUP]      remove the group's containers and inventory (keeps the cached images)
#   scripts/lab.sh reset [GROUP]     down, then up: every scenario of the group built again from scratch
#   scripts/lab.sh status [GROUP]    each host, its container state, and whether ssh answers (exit 1 if not all)
#   scripts/lab.sh reset-host NAME...  rebuild only those hosts' scenarios, in place (new password, fresh P3009)
#
# GROUP is `lab` (the default: the seven scenario hosts, lab/inventory.yml, used by Molecule and the
# demo), `faults` (the fault-campaign hosts, lab/inventory_faults.yml, group lab_faults; only
# tests/integration/test_faults.py uses them) or `all`.
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
oracle7=${XDG_CACHE_HOME:-$HOME/.cache}/prisma_ops_migrate/prisma-7.10.1
shim7=$repo/tests/harness/prisma7_engine
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
inventory=$repo/lab/inventory.yml
fault_inventory=$repo/lab/inventory_faults.yml
key=$cache/ssh/id_ed25519
base_image="prisma-ops-lab-base:bookworm"
label="prisma-ops-lab"
# The fault hosts carry their own label, so `down`/`reset` of the lab (Molecule's create and destroy)
# leave them alone and the reverse.
fault_label="prisma-ops-lab-faults"
group_label=$label
app_dir=/opt/schooliat/repo/Backend
failing=20240301000000_grades

# name  scenario  ssh-port  pg-port  expected-state  expected-verdict  expected-action  backup-tmpfs  prisma
# prisma: 6 (6.19.3, the schema under src/prisma/db, named by the variables) or 7 (7.10.1, prisma.config.ts
# at the root naming db/schema.prisma and db/migrations, found by the roles from the config).
hosts=(
  "lab-applied     applied_but_stuck   22201 25431 deploy_blocked applied     resolve_applied"
  "lab-notapplied  not_applied         22202 25432 deploy_blocked not_applied resolve_rolled_back"
  "lab-partial     partial             22203 25433 deploy_blocked partial     stop"
  "lab-byhand      table_made_by_hand  22204 25434 deploy_blocked partial     stop"
  "lab-pending     pending_only        22205 25435 pending        none        deploy"
  "lab-healthy     healthy             22206 25436 in_sync        none        none"
  "lab-docker      containerised       22207 25437 deploy_blocked not_applied resolve_rolled_back"
  "lab-prisma7     not_applied         22208 25438 deploy_blocked not_applied resolve_rolled_back - 7"
)

# The fault campaign's hosts (tests/integration/test_faults.py, docs/reliability.md): fresh P3009s
# that the tests break on purpose and rebuild with reset-host. Their sshd is started with
# `docker exec` (not PID 1), so a test can kill it and start it again without stopping the
# container. lab-fault5's backup directory is a 16 MiB tmpfs (the full-disk test fills it).
# name  scenario  ssh-port  pg-port  expected-state  expected-verdict  expected-action  backup-tmpfs
fault_hosts=(
  "lab-fault1      not_applied         22211 25441 deploy_blocked not_applied resolve_rolled_back -"
  "lab-fault2      not_applied         22212 25442 deploy_blocked not_applied resolve_rolled_back -"
  "lab-fault3      not_applied         22213 25443 deploy_blocked not_applied resolve_rolled_back -"
  "lab-fault4      not_applied         22214 25444 deploy_blocked not_applied resolve_rolled_back -"
  "lab-fault5      not_applied         22215 25445 deploy_blocked not_applied resolve_rolled_back 16m"
  "lab-faultdocker containerised       22216 25446 deploy_blocked not_applied resolve_rolled_back -"
)
backups_dir=/opt/schooliat/shared/backups

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
lab7_image=""
build_images() {
  local base_id key_hash context node_bin
  [ -f "$oracle/package-lock.json" ] || die "the Prisma CLI oracle is missing at $oracle: run make setup"
  base_id=$(docker image inspect -f '{{.Id}}' "$base_image")
  [ -f "$oracle7/package-lock.json" ] || die "the Prisma 7 CLI oracle is missing at $oracle7: run make setup"
  node_bin=$(command -v node) || die "node is missing on this machine: make setup installs it"
  key_hash=$( { hash_inputs "$repo/lab/image" "$repo/tests/harness/prisma_files/unref-long-timers.js" \
                  "$oracle/package-lock.json"; echo "$base_id"; } | sha256sum | cut -c1-12)
  lab_image=prisma-ops-lab:$key_hash
  docker_image=prisma-ops-lab-docker:$key_hash
  lab7_image=prisma-ops-lab-prisma7:$( { echo "$key_hash"; hash_inputs "$oracle7/package-lock.json" "$shim7/schema-engine.sh" "$shim7/schema-engine-shim.mjs" "$node_bin"; } \
                                        | sha256sum | cut -c1-12)
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
  if ! docker image inspect "$lab7_image" >/dev/null 2>&1; then
    say "building $lab7_image (log: $cache/logs/build-prisma7.log)"
    context=$cache/build-context-prisma7
    rm -rf "$context"
    mkdir -p "$context"
    cp -a "$repo/lab/image/prisma7.Dockerfile" "$repo/lab/image/prisma7-offline.sh" "$shim7/schema-engine.sh" "$shim7/schema-engine-shim.mjs" "$context/"
    cp "$node_bin" "$context/node"
    cp -al "$oracle7/node_modules" "$context/node_modules" 2>/dev/null || cp -a "$oracle7/node_modules" "$context/node_modules"
    DOCKER_BUILDKIT=0 docker build --network host --build-arg "LAB_IMAGE=$lab_image" -t "$lab7_image" \
      -f "$context/prisma7.Dockerfile" "$context" >"$cache/logs/build-prisma7.log" 2>&1 \
      || { tail -n 20 "$cache/logs/build-prisma7.log" >&2; die "building $lab7_image failed (log: $cache/logs/build-prisma7.log)"; }
    rm -rf "$context"
  fi
}

# --- the app tree every host gets (staged once per content hash) -----------------------------
stage=""
stage7=""
app_hash=""
stage_app() {
  local config=$repo/tests/harness/prisma_files/prisma.config.ts
  app_hash=$(hash_inputs "$repo/lab/app" "$repo/lab/scenario.sh" "$config")
  stage=$cache/stage/app-$app_hash
  stage7=$cache/stage/app7-$app_hash
  [ -d "$stage" ] && [ -d "$stage7" ] && return 0
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
  # The Prisma 7 host's tree: the same app laid out as a Prisma 7 project does it (config at the root, the
  # schema without url, everything under db/).
  local app7=$stage7.tmp
  rm -rf "$app7"
  mkdir -p "$app7/db"
  cp -a "$repo/lab/app/package.json" "$app7/"
  sed -i 's/"6\.19\.3"/"7.10.1"/g' "$app7/package.json"
  grep -v '^  url *= env("DATABASE_URL")$' "$repo/lab/app/src/prisma/db/schema.prisma" >"$app7/db/schema.prisma"
  cp -a "$repo/lab/app/src/prisma/db/migrations" "$app7/db/migrations"
  cat >"$app7/prisma.config.ts" <<'TS'
// Generated by scripts/lab.sh: the lab's app as a Prisma 7 project (schema and migrations under db/).
// Prisma 7 does not read .env by itself; the app loads it with dotenv.
import 'dotenv/config'
import { defineConfig, env } from 'prisma/config'

export default defineConfig({
  schema: 'db/schema.prisma',
  migrations: { path: 'db/migrations' },
  datasource: { url: env('DATABASE_URL') },
})
TS
  if grep -q 'url' "$app7/db/schema.prisma"; then die "could not take the url out of the lab schema for Prisma 7"; fi
  mv "$app7" "$stage7"
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
  docker run -d --name "$name" --hostname "$name" --network host --label "$group_label=1" \
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
  local tree=${2:-$stage}
  docker exec "$1" mkdir -p /opt/lab/app
  docker cp "$tree/." "$1:/opt/lab/app/" >/dev/null
  docker cp "$repo/lab/scenario.sh" "$1:/opt/lab/scenario.sh" >/dev/null
}

# sshd for a fault host (no LAB_SSH_PORT: PID 1 does not wait on it): started, unless it answers.
start_sshd() {
  local name=$1 port=$2
  ssh_answers "$port" && return 0
  docker exec "$name" sh -c "mkdir -p /run/sshd && /usr/sbin/sshd -p $port -o ListenAddress=127.0.0.1"
}

# sshd as PID 1's child for the lab; started apart (start_sshd) on the fault hosts.
ssh_env() { if [ "$group_label" = "$label" ]; then echo "-e LAB_SSH_PORT=$1"; fi; }

build_host_scenario() {
  local name=$1 scenario=$2 pg_port=$3 prisma=${4:-6} password tree=$stage
  [ "$prisma" = 7 ] && tree=$stage7
  copy_lab_files "$name" "$tree"
  password=$(openssl rand -hex 16)
  # -e NAME without a value passes it from this environment: never on a command line.
  LAB_DB_PASSWORD=$password docker exec -e LAB_DB_PASSWORD -e "LAB_PG_PORT=$pg_port" "$name" /opt/lab/scenario.sh db-init
  LAB_DB_PASSWORD=$password docker exec -e LAB_DB_PASSWORD -e "LAB_PG_PORT=$pg_port" -e "LAB_PRISMA=$prisma" "$name" \
    /opt/lab/scenario.sh app "$scenario"
  docker exec "$name" touch /opt/lab/ready
}

# One ordinary host: sshd, PostgreSQL and the app in one container.
up_host() {
  local name=$1 scenario=$2 ssh_port=$3 pg_port=$4 tmpfs=${5:--} prisma=${6:-6} extra=() want image=$lab_image
  [ "$prisma" = 7 ] && image=$lab7_image
  want="$image/$app_hash/$scenario"
  if [ "$tmpfs" != - ]; then
    extra=(--tmpfs "$backups_dir:size=$tmpfs,mode=0750")
    want="$want/tmpfs-$tmpfs"
  fi
  # shellcheck disable=SC2046 # ssh_env: zero or two words
  if ensure_container "$name" "$image" "$want" "$ssh_port $pg_port" \
       $(ssh_env "$ssh_port") -e "LAB_PG_PORT=$pg_port" "${extra[@]}" \
       -v "$cache/ssh/authorized_keys:/root/.ssh/authorized_keys:ro"; then
    wait_pg "$name" "$pg_port"
    build_host_scenario "$name" "$scenario" "$pg_port" "$prisma"
  else
    wait_pg "$name" "$pg_port"
  fi
  [ "$group_label" = "$label" ] || start_sshd "$name" "$ssh_port"
}

# The containerised host: sshd in one container (with the docker CLI and the engine socket),
# PostgreSQL in a second, the app (node, prisma) in a third; reached with `docker exec`.
up_docker_host() {
  local name=$1 ssh_port=$3 pg_port=$4 password fresh=0 want
  want="$docker_image/$app_hash/containerised"
  ensure_container "$name-db" "$lab_image" "$want" "$pg_port" -e "LAB_PG_PORT=$pg_port" && fresh=1
  ensure_container "$name-app" "$lab_image" "$want" "" && fresh=1
  # shellcheck disable=SC2046 # ssh_env: zero or two words
  ensure_container "$name" "$docker_image" "$want" "$ssh_port" $(ssh_env "$ssh_port") \
    -v "$cache/ssh/authorized_keys:/root/.ssh/authorized_keys:ro" \
    -v /var/run/docker.sock:/var/run/docker.sock && fresh=1
  [ "$group_label" = "$label" ] || start_sshd "$name" "$ssh_port"
  if [ "$fresh" = 0 ]; then wait_pg "$name-db" "$pg_port"; return 0; fi
  # One part new means the scenario is rebuilt across all three.
  docker rm -f "$name-db" "$name-app" >/dev/null 2>&1
  ensure_container "$name-db" "$lab_image" "$want" "$pg_port" -e "LAB_PG_PORT=$pg_port" || true
  ensure_container "$name-app" "$lab_image" "$want" "" || true
  docker exec "$name" rm -f /opt/lab/scenario.done /opt/lab/ready
  wait_pg "$name-db" "$pg_port"
  build_docker_scenario "$name" "$pg_port"
}

build_docker_scenario() {
  local name=$1 pg_port=$2 password part
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

# select_group lab|faults: the hosts, inventory, group name and container label the commands act on.
select_group() {
  case "$1" in
    lab) group_hosts=("${hosts[@]}"); group_inventory=$inventory; group_name=lab; group_label=$label ;;
    faults) group_hosts=("${fault_hosts[@]}"); group_inventory=$fault_inventory; group_name=lab_faults
            group_label=$fault_label ;;
    *) die "unknown group $1: lab, faults or all" ;;
  esac
}

groups_of() {
  case "${1:-lab}" in
    all) echo lab faults ;;
    lab|faults) echo "${1:-lab}" ;;
    *) die "unknown group $1: lab, faults or all" ;;
  esac
}

write_inventory() {
  local line name scenario ssh_port pg_port state verdict action prisma
  {
    echo "---"
    echo "# Generated by scripts/lab.sh up; removed by scripts/lab.sh down. Do not edit."
    echo "$group_name:"
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
    echo "    lab_backup_dir: $backups_dir"
    echo "    lab_failed_migration: $failing"
    echo "  hosts:"
    for line in "${group_hosts[@]}"; do
      read -r name scenario ssh_port pg_port state verdict action _ prisma <<<"$line"
      echo "    $name:"
      echo "      ansible_port: $ssh_port"
      echo "      lab_scenario: $scenario"
      echo "      lab_db_port: $pg_port"
      echo "      lab_expected_state: $state"
      echo "      lab_expected_verdict: $verdict"
      echo "      lab_expected_action: $action"
      if [ "$action" = stop ]; then
        # The lab shows the review path for these; recover's default (proven) would complete them.
        echo "      recover_partial_strategy: stop"
      fi
      if [ "${prisma:-6}" = 7 ]; then
        # A Prisma 7 project in its own layout: the roles find the schema, migrations and CLI from its config.
        echo "      lab_prisma: 7"
        echo "      lab_migrations_dir: $app_dir/db/migrations"
        echo "      lab_schema_path: db/schema.prisma"
        echo "      recover_schema_path: ''"
        echo "      recover_migrations_dir: ''"
        echo "      recover_deploy_command: []"
        echo "      drift_check_migrations_dir: ''"
      fi
      if [ "$scenario" = containerised ]; then
        echo "      lab_app_container: $name-app"
        echo "      lab_db_container: $name-db"
      fi
    done
  } >"$group_inventory.tmp"
  mv "$group_inventory.tmp" "$group_inventory"
}

prepare_build() {
  "$repo/scripts/docker-engine.sh"  # it closes our lock descriptor before starting dockerd
  mkdir -p "$cache/logs"
  build_base
  build_images
  stage_app
  ensure_key
}

cmd_up() {
  local line name scenario ssh_port pg_port tmpfs prisma failed=0 pids=() names=() i
  # Hosts come up in parallel; each one's output goes to its own log.
  for line in "${group_hosts[@]}"; do
    read -r name scenario ssh_port pg_port _ _ _ tmpfs prisma <<<"$line"
    if [ "$scenario" = containerised ]; then
      up_docker_host "$name" "$scenario" "$ssh_port" "$pg_port" >"$cache/logs/$name.log" 2>&1 &
    else
      up_host "$name" "$scenario" "$ssh_port" "$pg_port" "${tmpfs:--}" "${prisma:-6}" >"$cache/logs/$name.log" 2>&1 &
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
  for line in "${group_hosts[@]}"; do
    read -r name scenario ssh_port _ <<<"$line"
    wait_ssh "$name" "$ssh_port"
  done
  write_inventory
  say "${#group_hosts[@]} hosts up; inventory: ${group_inventory#"$repo"/} (group $group_name)"
}

cmd_down() {
  local ids
  rm -f "$group_inventory"
  if ! docker info >/dev/null 2>&1; then
    say "the Docker engine is not running: no lab containers to remove"
    return 0
  fi
  ids=$(docker ps -aq --filter "label=$group_label=1")
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086 # one id per word
    docker rm -f $ids >/dev/null
    say "removed $(wc -w <<<"$ids") $group_name containers (images kept)"
  else
    say "no $group_name containers"
  fi
}

cmd_status() {
  local line name scenario ssh_port all=0 answers
  docker info >/dev/null 2>&1 || die "the Docker engine is not running (scripts/docker-engine.sh starts it)"
  printf '%-16s %-20s %-6s %-10s %s\n' HOST SCENARIO SSH CONTAINER SSH_ANSWERS
  for line in "${group_hosts[@]}"; do
    read -r name scenario ssh_port _ <<<"$line"
    answers=no
    if ssh_answers "$ssh_port"; then answers=yes; else all=1; fi
    printf '%-16s %-20s %-6s %-10s %s\n' "$name" "$scenario" "$ssh_port" "$(container_state "$name")" "$answers"
  done
  return "$all"
}

# Undo a scenario inside one container (not in lab/scenario.sh: its hash is part of every host's label,
# so changing it would rebuild the whole lab). `db` drops the role and database, `files` the app tree
# (but node_modules), the scenario's markers and the backups (the directory may be a tmpfs: kept).
undo_scenario() {
  local name=$1 pg_port=$2
  shift 2
  docker exec -e "LAB_PG_PORT=$pg_port" -e "LAB_APP_DIR=$app_dir" -e "LAB_BACKUPS=$backups_dir" "$name" bash -c '
    set -euo pipefail
    for part in "$@"; do
      case "$part" in
        db) for sql in "DROP DATABASE IF EXISTS schooliat WITH (FORCE)" "DROP ROLE IF EXISTS schooliat"; do
              runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$LAB_PG_PORT" -c "$sql"
            done ;;
        files) if [ -d "$LAB_APP_DIR" ]; then find "$LAB_APP_DIR" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +; fi
               if [ -d "$LAB_BACKUPS" ]; then find "$LAB_BACKUPS" -mindepth 1 -delete; fi
               rm -rf /opt/lab/held /opt/lab/scenario.done /opt/lab/scenario.log /opt/lab/ready ;;
      esac
    done' undo "$@"
}

# Rebuild one host's scenario in place: PostgreSQL and sshd started if a test stopped them, the role
# and database dropped, the app tree, markers and backups removed, then the scenario built again with a
# new password. The container (and the modules' virtualenv in it) stays, so this takes seconds.
reset_one() {
  local want=$1 line name scenario ssh_port pg_port part prisma
  for line in "${hosts[@]}" "${fault_hosts[@]}"; do
    read -r name scenario ssh_port pg_port _ _ _ _ prisma <<<"$line"
    [ "$name" = "$want" ] || continue
    if [ "$scenario" = containerised ]; then
      for part in "$name-db" "$name-app" "$name"; do
        [ "$(container_state "$part")" = running ] || die "$part is not running: scripts/lab.sh up first"
      done
      docker exec "$name-db" sh -c 'pg_ctlcluster 15 main status >/dev/null || pg_ctlcluster 15 main start'
      wait_pg "$name-db" "$pg_port"
      undo_scenario "$name-db" "$pg_port" db files
      undo_scenario "$name-app" "$pg_port" files
      undo_scenario "$name" "$pg_port" files
      build_docker_scenario "$name" "$pg_port"
    else
      [ "$(container_state "$name")" = running ] || die "$name is not running: scripts/lab.sh up first"
      docker exec "$name" sh -c 'pg_ctlcluster 15 main status >/dev/null || pg_ctlcluster 15 main start'
      wait_pg "$name" "$pg_port"
      undo_scenario "$name" "$pg_port" db files
      build_host_scenario "$name" "$scenario" "$pg_port" "${prisma:-6}"
    fi
    if [ "$(docker inspect -f "{{index .Config.Labels \"$fault_label\"}}" "$name")" = 1 ]; then
      start_sshd "$name" "$ssh_port"
    fi
    wait_ssh "$name" "$ssh_port"
    say "$name: $scenario rebuilt"
    return 0
  done
  die "no lab host named $want"
}

cmd_reset_host() {
  local name
  [ "$#" -gt 0 ] || die "usage: scripts/lab.sh reset-host NAME..."
  docker info >/dev/null 2>&1 || die "the Docker engine is not running (scripts/docker-engine.sh starts it)"
  stage_app
  # In parallel, each into its own log, like `up`.
  local pids=() i failed=0
  for name in "$@"; do
    reset_one "$name" >"$cache/logs/$name.reset.log" 2>&1 &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    name=${*:$((i + 1)):1}
    if wait "${pids[$i]}"; then
      tail -n 1 "$cache/logs/$name.reset.log"
    else
      failed=1
      echo "lab: reset-host $name failed; last lines of $cache/logs/$name.reset.log:" >&2
      tail -n 15 "$cache/logs/$name.reset.log" >&2
    fi
  done
  [ "$failed" = 0 ] || die "some hosts were not rebuilt (see above)"
}

# One lab command at a time (parallel test workers may all ask for `up`): wait, bounded, for the lock.
lock() {
  mkdir -p "$cache"
  exec 9>"$cache/lab.lock"
  flock -n 9 && return 0
  echo "lab: waiting (at most 20 minutes) for $cache/lab.lock, held by: $(lock_holders 9>&-)" >&2
  flock -w 1200 9 || die "$cache/lab.lock is still held after 20 minutes by: $(lock_holders 9>&-). If that is not a running scripts/lab.sh, end it and rerun"
}

# The processes that have the lock file open (pid and command), to name them in a wait or a failure.
lock_holders() {
  local target fd pid out=
  target=$(readlink -f "$cache/lab.lock")
  for fd in /proc/[0-9]*/fd/*; do
    [ "$(readlink "$fd" 2>/dev/null)" = "$target" ] || continue
    pid=${fd#/proc/}; pid=${pid%%/*}
    [ "$pid" = "$$" ] && continue
    out+="pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)) "
  done
  echo "${out:-unknown}"
}

command=${1:-}
[ "$#" -gt 0 ] && shift
case "$command" in
  up) lock; prepare_build; for g in $(groups_of "${1:-}"); do select_group "$g"; cmd_up; done ;;
  down) lock; for g in $(groups_of "${1:-}"); do select_group "$g"; cmd_down; done ;;
  reset) lock; prepare_build; for g in $(groups_of "${1:-}"); do select_group "$g"; cmd_down; cmd_up; done ;;
  status) rc=0; for g in $(groups_of "${1:-}"); do select_group "$g"; cmd_status || rc=1; done; exit "$rc" ;;
  reset-host) lock; cmd_reset_host "$@" ;;
  *) echo "usage: scripts/lab.sh up|down|reset|status [lab|faults|all] | reset-host NAME..." >&2; exit 2 ;;
esac
