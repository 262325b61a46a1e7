# Sourced by the test scripts that need Python tools from PyPI.
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
