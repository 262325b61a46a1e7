#!/usr/bin/env bash
# Checks the REST contract the way users meet it, against a live `poolmanager serve`
# on the real engine (POOLMANAGER_TEST_DOCKER):
#
#  1. openapi-spec-validator on the served spec;
#  2. a Python client generated from the served spec by openapi-python-client drives
#     the README scenario and every error (tests/contract/client_scenario.py);
#  3. Schemathesis fuzzes a second server with the admin token, every check, the
#     stateful phase included (tests/contract/schemathesis.toml). That server's
#     endpoint policy allows simulated engines only (`sim://*`), refused before any
#     probe: nothing the fuzzer sends reaches an engine.
#
# The tools come from PyPI, pinned, into target/contract-venv when missing
# (`scripts/test-contract.sh --install` installs them and stops). The server is
# PM_SERVER when set (scripts/test.sh passes the binary its test build made), else
# `cargo build -p poolmanager`. Under CI=true they must run: a missing engine or tool
# fails the run. The fuzzing time is CONTRACT_FUZZ_SECONDS (180 under CI, 60
# otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

CONTRACT=servers/poolmanager/tests/contract
VENV=target/contract-venv
PINS=(schemathesis==4.32.5 openapi-python-client==0.29.1 openapi-spec-validator==0.9.0)
ADMIN=contract-admin-token
USER=contract-user-token
CI=${CI:-}
FUZZ_SECONDS=${CONTRACT_FUZZ_SECONDS:-$([[ "$CI" == true ]] && echo 180 || echo 60)}
WORK=$(mktemp -d /tmp/pm-contract.XXXXXX)
PIDS=()

log() { printf 'test-contract.sh: %s\n' "$*" >&2; }
skip_or_fail() {
  if [[ "$CI" == true ]]; then log "CI=true: $*"; exit 1; fi
  log "skipping the contract check: $*"; exit 0
}
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

source scripts/venv.sh
if [[ "${1:-}" == --install ]]; then
  pinned_venv "$VENV" "${PINS[@]}"
  exit 0
fi
[[ -n "${POOLMANAGER_TEST_DOCKER:-}" ]] || skip_or_fail "POOLMANAGER_TEST_DOCKER names no engine (scripts/test.sh sets it)"
pinned_venv "$VENV" "${PINS[@]}"
SERVER=$(server_binary)

# Starts `poolmanager serve` on a free port with a fresh SQLite file and the config
# file $2 (none when missing); sets BASE.
start_server() {
  local name=$1 port
  port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [[ -n "${2:-}" ]]; then export POOLMANAGER_CONFIG_FILE=$2; else unset POOLMANAGER_CONFIG_FILE; fi
  POOLMANAGER_ADMIN_TOKEN=$ADMIN POOLMANAGER_USER_TOKEN=$USER POOLMANAGER_RECONCILE_INTERVAL=0 \
    RUST_LOG=${RUST_LOG:-warn} \
    "$SERVER" serve --listen "127.0.0.1:$port" --database "sqlite://$WORK/$name.db" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  BASE=http://127.0.0.1:$port/api/v1
  for _ in $(seq 1 100); do
    curl -fsS "$BASE/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "the $name server did not start:"; tail -n 30 "$WORK/$name.log" >&2; exit 1
}

# POSTs JSON with the admin token; prints the answer.
post() { curl -fsS -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$BASE$1" -d "$2"; }

log "1/3 the served spec is valid OpenAPI"
start_server scenario
curl -fsS "$BASE/openapi.json" -o "$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

log "2/3 a generated client drives the API"
"$VENV/bin/openapi-python-client" generate --path "$WORK/openapi.json" --meta none \
  --output-path "$WORK/client/pool_manager_client" --config "$CONTRACT/generator.yaml" >"$WORK/generate.log" 2>&1 \
  || { cat "$WORK/generate.log" >&2; exit 1; }
if grep -q "^Warning" "$WORK/generate.log"; then
  log "openapi-python-client warned about the spec:"; cat "$WORK/generate.log" >&2; exit 1
fi
PM_BASE_URL=$BASE PM_ADMIN_TOKEN=$ADMIN PM_USER_TOKEN=$USER PM_ENGINE=$POOLMANAGER_TEST_DOCKER \
  PM_IMAGE=${POOLMANAGER_TEST_IMAGE:-poolmanager/testnode:latest} PM_CLIENT_DIR=$WORK/client \
  "$VENV/bin/python" "$CONTRACT/client_scenario.py" \
  || { log "the scenario failed; the server's log:"; tail -n 40 "$WORK/scenario.log" >&2; exit 1; }

log "3/3 schemathesis for ${FUZZ_SECONDS}s against a server that may reach simulated engines only"
# Simulated engines that serve no ports (the fuzzer may ask for 10000 clusters), and a
# default lease length, so that a renewal without one is accepted as the spec allows;
# applies wait at most a second, well within the fuzzer's request timeout.
printf '[sim]\nserve_ports = false\n' >"$WORK/fuzz.toml"
POOLMANAGER_ENDPOINT_ALLOW='["sim://*"]' POOLMANAGER_DEFAULT_TTL_SECONDS=3600 POOLMANAGER_MAX_APPLY_WAIT_SECONDS=1 \
  start_server fuzz "$WORK/fuzz.toml"
post /blueprints '{"name": "fuzz", "labels": {"consensus": "pbft"},
  "nodes": [{"name": "vp0", "image": "poolmanager/testnode:latest", "ports": {"web": "80/tcp"}}]}' >/dev/null
post /hosts "{\"name\": \"fuzz-sim\", \"kind\": \"sim\", \"endpoint\": \"sim://contract-$$\", \"capacity\": 4}" >/dev/null
export PM_ADMIN_TOKEN=$ADMIN
status=0
# Run from the work directory: Schemathesis keeps a cache where it runs.
(cd "$WORK" && "$OLDPWD/$VENV/bin/st" --config-file "$OLDPWD/$CONTRACT/schemathesis.toml" run \
  "$BASE/openapi.json" --url "$BASE" --checks all --max-time "$FUZZ_SECONDS" --no-color \
  --report junit --report-dir "$WORK/report") >"$WORK/schemathesis.log" 2>&1 || status=$?
if grep -q "FAILURES" "$WORK/schemathesis.log"; then
  sed -n '/^=* FAILURES =*$/,$p' "$WORK/schemathesis.log" >&2
elif grep -q "SUMMARY" "$WORK/schemathesis.log"; then
  sed -n '/^=* SUMMARY =*$/,$p' "$WORK/schemathesis.log" >&2
else
  cat "$WORK/schemathesis.log" >&2
  status=1
fi
if ! curl -fsS "$BASE/health" >/dev/null; then
  log "the fuzzed server stopped answering; its log:"; tail -n 40 "$WORK/fuzz.log" >&2; status=1
fi
if grep -q "panicked" "$WORK/fuzz.log" "$WORK/scenario.log"; then
  log "a server panicked:"; grep -A5 "panicked" "$WORK/fuzz.log" "$WORK/scenario.log" >&2; status=1
fi
[[ $status -eq 0 ]] && echo "contract: 3 passed, 0 failed" || echo "contract: 2 passed, 1 failed"
exit "$status"
