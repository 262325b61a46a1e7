#!/usr/bin/env bash
# A MongoDB server for the tests: sets POOLMANAGER_TEST_MONGO_URL.
#
# When POOLMANAGER_TEST_MONGO_URL is already set (a real MongoDB), it is used as it
# is. Otherwise this starts nx-27017 (a MongoDB wire-protocol server on SQLite, from
# PyPI) in memory on a free port of 127.0.0.1; its virtualenv is cached in
# ${XDG_CACHE_HOME:-~/.cache}/poolmanager, so later runs start in about a second.
#
#   source scripts/test-mongo.sh          from another script (scripts/test.sh):
#                                         exports the URL; that script calls
#                                         _pm_mongo_stop when it ends.
#   scripts/test-mongo.sh CMD [ARGS...]   runs CMD with the URL set, then stops it.
#   scripts/test-mongo.sh                 prints the URL and serves until Ctrl-C.
#   scripts/test-mongo.sh --install       installs nx-27017 only.
#
# Under CI=true a server that cannot be started fails; otherwise the Mongo tests
# are skipped with a notice.

PM_NX_VERSION=0.8.1
# nx-27017's own dependencies, pinned to the versions the store is tested with.
PM_NX_PACKAGES=("nx-27017==$PM_NX_VERSION" "neosqlite==1.17.2" "pymongo==4.20.1")
PM_NX_VENV="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/poolmanager/nx-27017-$PM_NX_VERSION"

_pm_mongo_log() { printf 'test-mongo.sh: %s\n' "$*" >&2; }

_pm_mongo_install() {
  [[ -f "$PM_NX_VENV/.installed" ]] && return 0
  _pm_mongo_log "installing ${PM_NX_PACKAGES[*]} into $PM_NX_VENV"
  rm -rf "$PM_NX_VENV"
  mkdir -p "$(dirname "$PM_NX_VENV")"
  python3 -m venv "$PM_NX_VENV" >&2 &&
    "$PM_NX_VENV/bin/pip" install -q --disable-pip-version-check "${PM_NX_PACKAGES[@]}" >&2 &&
    touch "$PM_NX_VENV/.installed"
}

# Starts nx-27017 and sets PM_MONGO_PID, PM_MONGO_DIR and POOLMANAGER_TEST_MONGO_URL.
_pm_mongo_start() {
  _pm_mongo_install || { _pm_mongo_log "could not install nx-27017"; return 1; }
  local port
  port=$("$PM_NX_VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
    return 1
  PM_MONGO_DIR=$(mktemp -d /tmp/pm-mongo.XXXXXX)
  "$PM_NX_VENV/bin/nx-27017" --db memory --host 127.0.0.1 -p "$port" \
    --log-file "$PM_MONGO_DIR/nx.log" --pid-file "$PM_MONGO_DIR/nx.pid" >"$PM_MONGO_DIR/out.log" 2>&1 &
  PM_MONGO_PID=$!
  local ready='import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5)'
  for _ in $(seq 1 100); do
    if "$PM_NX_VENV/bin/python" -c "$ready" "$port" 2>/dev/null; then
      export POOLMANAGER_TEST_MONGO_URL="mongodb://127.0.0.1:$port/?serverSelectionTimeoutMS=10000"
      _pm_mongo_log "nx-27017 $PM_NX_VERSION (pid $PM_MONGO_PID) at $POOLMANAGER_TEST_MONGO_URL"
      return 0
    fi
    kill -0 "$PM_MONGO_PID" 2>/dev/null || break
    sleep 0.2
  done
  _pm_mongo_log "nx-27017 did not come up; its output:"
  tail -n 20 "$PM_MONGO_DIR/out.log" >&2 || true
  _pm_mongo_stop
  return 1
}

_pm_mongo_stop() {
  if [[ -n "${PM_MONGO_PID:-}" ]]; then
    kill "$PM_MONGO_PID" 2>/dev/null || true
    for _ in $(seq 1 25); do kill -0 "$PM_MONGO_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$PM_MONGO_PID" 2>/dev/null || true
  fi
  [[ -n "${PM_MONGO_DIR:-}" ]] && rm -rf "$PM_MONGO_DIR"
  PM_MONGO_PID="" PM_MONGO_DIR=""
}

# Ensures POOLMANAGER_TEST_MONGO_URL; fails only under CI=true.
_pm_mongo_ensure() {
  if [[ -n "${POOLMANAGER_TEST_MONGO_URL:-}" ]]; then
    _pm_mongo_log "using the MongoDB server at POOLMANAGER_TEST_MONGO_URL"
    return 0
  fi
  _pm_mongo_start && return 0
  if [[ "${CI:-}" == "true" ]]; then
    _pm_mongo_log "CI=true and no MongoDB test server could be started"
    return 1
  fi
  _pm_mongo_log "no MongoDB test server: the Mongo tests will be skipped"
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  # Sourced: the sourcing script stops the server in its own clean-up.
  _pm_mongo_ensure || exit 1
elif [[ "${1:-}" == --install ]]; then
  _pm_mongo_install
else
  set -euo pipefail
  trap _pm_mongo_stop EXIT
  _pm_mongo_ensure
  if (($#)); then
    "$@"
  else
    echo "POOLMANAGER_TEST_MONGO_URL=${POOLMANAGER_TEST_MONGO_URL:-}"
    [[ -n "${PM_MONGO_PID:-}" ]] && wait "$PM_MONGO_PID"
  fi
fi
