#!/usr/bin/env bash
# Runs PoolManager's whole test suite against a real Docker engine.
#
# Uses the engine named by POOLMANAGER_TEST_DOCKER or DOCKER_HOST, or the default
# socket, when one answers. Otherwise it installs Debian's docker.io (and
# busybox-static) if missing, starts a private dockerd with its own data-root,
# exec-root, pidfile and socket, and stops it at the end. It builds the test image
# with `docker import` from busybox, makes the engine a swarm manager (leaving the
# swarm at the end if it made one). Then it builds every test target once (the Python
# tools, the browser and the MongoDB test server install meanwhile) and runs
# `cargo test --workspace` and its doc tests; beside them, one after another, the
# embedding examples (custom_driver, mongo, embed), the REST contract check
# (scripts/test-contract.sh) and the dashboard's browser tests (scripts/test-ui.sh),
# all on the binaries of that one build. The cargo tests print as they run; each
# phase beside them prints its output when they are done. Closes with the time of
# each phase. Under CI=true a missing engine fails the run; it never silently skips.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${POOLMANAGER_TEST_IMAGE:-poolmanager/testnode:latest}
PRIVATE_DIR=""
DOCKERD_PID=""
# Each phase's output, and its time and status (`SECONDS STATUS` in NAME.done).
LOGS=$(mktemp -d /tmp/pm-test.XXXXXX)
BACKGROUND=()

log() { printf 'test.sh: %s\n' "$*" >&2; }

cleanup() {
  local pid
  for pid in "${BACKGROUND[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  declare -F _pm_mongo_stop >/dev/null && _pm_mongo_stop
  [[ "${SWARM:-}" == initialized ]] && { docker -H "$ENDPOINT" swarm leave --force >/dev/null 2>&1 || true; }
  if [[ -n "$DOCKERD_PID" ]]; then
    log "stopping the private dockerd (pid $DOCKERD_PID)"
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$DOCKERD_PID" 2>/dev/null || true
  fi
  if [[ -n "$PRIVATE_DIR" ]]; then
    # Overlay mounts under the data root may outlive a killed dockerd.
    grep -o " $PRIVATE_DIR[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$PRIVATE_DIR" 2>/dev/null || true
  fi
  rm -rf "$LOGS"
}
trap cleanup EXIT

answers() { command -v docker >/dev/null && timeout 10 docker -H "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -ne 0 ]]; then
    log "need root to install ${missing[*]}"
    return 1
  fi
  log "installing ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

start_private_dockerd() {
  apt_install docker.io || return 1
  PRIVATE_DIR=$(mktemp -d /tmp/pm-dockerd.XXXXXX)
  local sock="unix://$PRIVATE_DIR/docker.sock"
  log "starting a private dockerd at $sock"
  # Every cluster is one network: /24 pools give room for 256 of them, where the
  # engine's default pools run out at 31.
  dockerd --data-root "$PRIVATE_DIR/data" --exec-root "$PRIVATE_DIR/exec" \
    --pidfile "$PRIVATE_DIR/docker.pid" -H "$sock" \
    --default-address-pool base=10.213.0.0/16,size=24 >"$PRIVATE_DIR/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 120); do
    if answers "$sock"; then ENDPOINT=$sock; return 0; fi
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  log "the private dockerd did not come up; its log:"
  tail -n 30 "$PRIVATE_DIR/dockerd.log" >&2 || true
  return 1
}

ENDPOINT=""
for candidate in "${POOLMANAGER_TEST_DOCKER:-}" "${DOCKER_HOST:-}" unix:///var/run/docker.sock; do
  if [[ -n "$candidate" ]] && answers "$candidate"; then ENDPOINT=$candidate; break; fi
done
if [[ -z "$ENDPOINT" ]] && ! start_private_dockerd; then
  if [[ "${CI:-}" == "true" ]]; then
    log "CI=true and no Docker engine could be found or started"
    exit 1
  fi
  log "no Docker engine: the engine tests will be skipped"
fi

if [[ -n "$ENDPOINT" ]]; then
  export POOLMANAGER_TEST_DOCKER=$ENDPOINT POOLMANAGER_TEST_IMAGE=$IMAGE
  log "engine $ENDPOINT ($(docker -H "$ENDPOINT" version --format '{{.Server.Version}}'))"
  scripts/test-image.sh "$ENDPOINT"
  SWARM=$(scripts/test-swarm.sh "$ENDPOINT")
fi

# The TLS engine tests give their private dockerd a bridge of its own, made with `ip`.
command -v ip >/dev/null || apt_install iproute2 || log "no iproute2: the TLS engine tests cannot run"

# Runs CMD... as phase NAME, its output into $LOGS/NAME.log through SINK (to_log, or
# to_terminal to show it as it comes too); records its time and status.
to_log() { cat >"$LOGS/$1.log"; }
to_terminal() { tee "$LOGS/$1.log"; }
phase() {
  local sink=$1 name=$2 begun=$SECONDS status=0
  shift 2
  "$@" 2>&1 | "$sink" "$name" || status=$?
  echo "$((SECONDS - begun)) $status" >"$LOGS/$name.done"
  return "$status"
}
# Prints how long each phase that ran took, and the whole run.
print_times() {
  local name took beside
  for name in setup tools build cargo examples contract ui; do
    read -r took _ 2>/dev/null <"$LOGS/$name.done" || continue
    case $name in
      tools) beside=" (beside the build)" ;;
      examples | contract | ui) beside=" (beside the cargo tests)" ;;
      *) beside="" ;;
    esac
    printf 'test.sh: %-10s %4ds%s\n' "$name" "$took" "$beside"
  done
  printf 'test.sh: %-10s %4ds\n' total "$SECONDS"
}
echo "$SECONDS 0" >"$LOGS/setup.done"

# The tools of the phases beside the cargo tests, installed while the build runs.
install_tools() {
  local status=0
  scripts/test-mongo.sh --install || status=1
  scripts/test-contract.sh --install || status=1
  scripts/test-ui.sh --install || status=1
  return "$status"
}
phase to_log tools install_tools &
BACKGROUND+=($!)

# One build of every target: the tests, the server binary that the contract and
# dashboard phases start, and the examples as programs (`--all-targets` builds them as
# tests). Both commands select every package with its dev-dependencies, so they
# resolve the same features and share every library; `cargo build -p` or
# `cargo run -p` would resolve other features and build most of it again.
build_all() {
  cargo test --workspace --all-targets --no-run && cargo build --workspace --examples
}
built=0
phase to_terminal build build_all || built=$?
wait "${BACKGROUND[0]}" || { log "installing the tools failed:"; cat "$LOGS/tools.log" >&2; }
((built == 0)) || {
  log "the build failed"
  print_times
  exit 1
}

source scripts/test-mongo.sh # MongoDB for the Mongo store's tests: sets POOLMANAGER_TEST_MONGO_URL
export PM_SERVER=$PWD/target/debug/poolmanager

# The embedding examples, as the build above made them, each run as a user would.
examples_phase() {
  local dir=target/debug/examples
  "$dir/custom_driver" || return 1
  if [[ -n "${POOLMANAGER_TEST_MONGO_URL:-}" ]]; then
    "$dir/mongo" "$POOLMANAGER_TEST_MONGO_URL" || return 1
  else
    log "no MongoDB test server: the mongo example is skipped"
  fi
  if [[ -n "$ENDPOINT" ]]; then
    "$dir/embed" "$ENDPOINT" || return 1
  else
    log "no Docker engine: the embed example is skipped"
  fi
  echo "examples: passed"
}

# Beside the cargo tests, which mostly wait on the engine, one after another: the
# examples; the REST contract as users meet it, a generated client and a fuzzer on a
# live server; the dashboard in headless Chromium, driven through an operator's
# session. Each keeps its status in its .done file.
SIDE=(examples contract ui)
side_phases() {
  phase to_log examples examples_phase || true
  phase to_log contract scripts/test-contract.sh || true
  phase to_log ui scripts/test-ui.sh || true
}
side_phases &
BACKGROUND+=($!)

# Every test binary runs, and the doc tests, so that one failure does not hide the others.
cargo_tests() {
  local status=0
  cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
  cargo test --workspace --doc || status=$?
  return "$status"
}
phase to_terminal cargo cargo_tests "$@" || true
wait "${BACKGROUND[1]}" || true
for name in "${SIDE[@]}"; do
  printf '\n---- %s (ran beside the cargo tests) ----\n' "$name"
  cat "$LOGS/$name.log" 2>/dev/null || log "$name left no output"
done

status=0
for name in build cargo "${SIDE[@]}"; do
  read -r _ phase_status <"$LOGS/$name.done" || phase_status=1
  ((phase_status == 0)) || { log "$name failed"; status=1; }
done
read -r passed failed < <(for name in cargo "${SIDE[@]}"; do cat "$LOGS/$name.log"; done 2>/dev/null | awk '
  /^test result:/ { p += $4; f += $6 }
  /^(contract|ui): [0-9]+ passed/ { p += $2; f += $4 } END { print p + 0, f + 0 }')
echo "tests: $passed passed, $failed failed"
print_times
exit "$status"
