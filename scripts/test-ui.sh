#!/usr/bin/env bash
# The dashboard in a real browser: Debian's Chromium, driven by Playwright from PyPI,
# against live `poolmanager serve` processes (fresh SQLite file, admin token from the
# environment) on the real engine (POOLMANAGER_TEST_DOCKER). The tests
# (servers/poolmanager/tests/ui/) start and restart the server themselves, and save a
# screenshot of each page under docs/img/ (UI_SCREENSHOTS=0 to keep them as they are).
#
# The tools come from PyPI, pinned, into target/ui-venv when missing; Chromium from
# apt when missing (as root); `scripts/test-ui.sh --install` installs them and stops.
# The server is PM_SERVER when set (scripts/test.sh passes the binary its test build
# made), else `cargo build -p poolmanager`. Under CI=true they must run: a missing
# engine, browser or tool fails the run; otherwise it is skipped with a notice.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/ui-venv
PINS=(playwright==1.65.2 pytest==8.4.2)
CHROMIUM=${PM_CHROMIUM:-/usr/bin/chromium}
CI=${CI:-}

log() { printf 'test-ui.sh: %s\n' "$*" >&2; }
skip_or_fail() {
  if [[ "$CI" == true ]]; then log "CI=true: $*"; exit 1; fi
  log "skipping the dashboard tests: $*"; exit 0
}

INSTALL_ONLY=""
if [[ "${1:-}" == --install ]]; then
  INSTALL_ONLY=1
  shift
fi
[[ -n "$INSTALL_ONLY" || -n "${POOLMANAGER_TEST_DOCKER:-}" ]] ||
  skip_or_fail "POOLMANAGER_TEST_DOCKER names no engine (scripts/test.sh sets it)"

if [[ ! -x "$CHROMIUM" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing chromium"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
      || skip_or_fail "could not install chromium with apt"
  fi
  [[ -x "$CHROMIUM" ]] || skip_or_fail "no browser at $CHROMIUM (apt-get install chromium, or set PM_CHROMIUM)"
fi

source scripts/venv.sh
pinned_venv "$VENV" "${PINS[@]}"
[[ -z "$INSTALL_ONLY" ]] || exit 0

SERVER=$(server_binary)
SHOTS=""
[[ "${UI_SCREENSHOTS:-1}" == 0 ]] || SHOTS=$PWD/docs/img

WORK=$(mktemp -d /tmp/pm-ui.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Chromium runs as root only without its sandbox (the tests pass --no-sandbox).
status=0
PM_SERVER=$SERVER PM_CHROMIUM=$CHROMIUM PM_SCREENSHOTS=$SHOTS PM_WORKDIR=$WORK \
  POOLMANAGER_TEST_IMAGE=${POOLMANAGER_TEST_IMAGE:-poolmanager/testnode:latest} \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider servers/poolmanager/tests/ui \
  --junitxml=target/ui-report.xml "$@" >&2 || status=$?
read -r passed failed < <("$VENV/bin/python" - <<'PY'
import xml.etree.ElementTree as ET
try:
    s = ET.parse("target/ui-report.xml").getroot()
    s = s if s.tag == "testsuite" else s.find("testsuite")
    t, f, e, k = (int(s.get(x, 0)) for x in ("tests", "failures", "errors", "skipped"))
    print(t - f - e - k, f + e)
except Exception:
    print(0, 1)
PY
)
if [[ $status -ne 0 && -f "$WORK/server.log" ]]; then
  log "the server's log:"; tail -n 40 "$WORK/server.log" >&2
fi
echo "ui: $passed passed, $failed failed"
exit "$status"
