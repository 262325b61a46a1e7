# Sourced by the test scripts that need Python tools from PyPI and a server binary.
#
#   pinned_venv DIR NAME==VERSION...
#
# Makes the virtualenv DIR when missing and installs each pinned package it lacks at
# that version. The caller defines `log` and `skip_or_fail` (which fails under
# CI=true and skips otherwise).
pinned_venv() {
  local venv=$1 pin have
  shift
  if [[ ! -x "$venv/bin/python" ]]; then
    log "making $venv"
    python3 -m venv "$venv" >&2 || skip_or_fail "could not make a Python venv in $venv"
  fi
  for pin in "$@"; do
    have=$("$venv/bin/python" -m pip show "${pin%%==*}" 2>/dev/null | sed -n 's/^Version: //p' || true)
    if [[ "$have" != "${pin##*==}" ]]; then
      log "$pin wanted, $venv has ${have:-none}: installing"
      "$venv/bin/pip" install -q "$pin" >&2 || skip_or_fail "could not install $pin"
    fi
  done
}

# Prints the path of the `poolmanager` binary to test: PM_SERVER when set (scripts/test.sh
# passes the one its test build made, so that no second build with other features
# runs), else the one `cargo build -p poolmanager` makes.
server_binary() {
  if [[ -n "${PM_SERVER:-}" ]]; then
    [[ -x "$PM_SERVER" ]] || { log "PM_SERVER=$PM_SERVER is no program"; return 1; }
    echo "$PM_SERVER"
    return 0
  fi
  cargo build -q -p poolmanager >&2 || return 1
  echo "$PWD/target/debug/poolmanager"
}
