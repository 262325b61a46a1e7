#!/usr/bin/env bash
# Runs PoolManager's whole test suite against a real Docker engine.
#
# Uses the engine named by POOLMANAGER_TEST_DOCKER or DOCKER_HOST, or the default
# socket, when one answers. Otherwise it installs Debian's docker.io (and
# busybox-static) if missing, starts a private dockerd with its own data-root,
# exec-root, pidfile and socket, and stops it at the end. It builds the test image
# with `docker import` from busybox, makes the engine a swarm manager (leaving the
# swarm at the end if it made one), then runs `cargo test --workspace`, the embedding
# examples (custom_driver, mongo, embed), the REST contract check
# (scripts/test-contract.sh) and the dashboard's browser tests (scripts/test-ui.sh).
# Under CI=true a missing engine fails the run; it never silently skips.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${POOLMANAGER_TEST_IMAGE:-poolmanager/testnode:latest}
PRIVATE_DIR=""
DOCKERD_PID=""

log() { printf 'test.sh: %s\n' "$*" >&2; }

cleanup() {
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

source scripts/test-mongo.sh # MongoDB for the Mongo store's tests: sets POOLMANAGER_TEST_MONGO_URL
# Keep the runner's output, and close with one summary line over every test binary.
OUTPUT=$(mktemp)
trap 'rm -f "$OUTPUT"; cleanup' EXIT
status=0
# How long each phase took, printed at the end.
PHASES=()
started=$SECONDS
phase() { PHASES+=("$(printf '%-10s %4ds' "$1" $((SECONDS - started)))"); started=$SECONDS; }
phase setup
# Every test binary runs, so that one failure does not hide the others.
{ cargo test --workspace --all-targets --no-fail-fast "$@" && cargo test --workspace --doc; } 2>&1 | tee "$OUTPUT" || status=$?
phase cargo
# The embedding examples, built by the run above, each run as a user would.
examples_phase() {
  local run=(cargo run -q -p poolmanager-examples --example)
  "${run[@]}" custom_driver || return 1
  if [[ -n "${POOLMANAGER_TEST_MONGO_URL:-}" ]]; then
    "${run[@]}" mongo -- "$POOLMANAGER_TEST_MONGO_URL" || return 1
  else
    log "no MongoDB test server: the mongo example is skipped"
  fi
  if [[ -n "$ENDPOINT" ]]; then
    "${run[@]}" embed -- "$ENDPOINT" || return 1
  else
    log "no Docker engine: the embed example is skipped"
  fi
  echo "examples: passed"
}
examples_phase 2>&1 | tee -a "$OUTPUT" || status=$?
phase examples
# The REST contract as users meet it: a generated client and a fuzzer on a live server.
scripts/test-contract.sh 2>&1 | tee -a "$OUTPUT" || status=$?
phase contract
# The dashboard in headless Chromium, driven through an operator's session.
scripts/test-ui.sh 2>&1 | tee -a "$OUTPUT" || status=$?
phase ui
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 }
  /^(contract|ui): [0-9]+ passed/ { p += $2; f += $4 } END { print p + 0, f + 0 }' "$OUTPUT")
echo "tests: $passed passed, $failed failed"
printf 'test.sh: %s\n' "${PHASES[@]}" "$(printf '%-10s %4ds' total "$SECONDS")"
exit "$status"
