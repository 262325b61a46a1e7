#!/usr/bin/env bash
# Makes the engine at ENDPOINT a swarm manager for the Swarm driver's tests: when it is
# in no swarm, initializes a single-node swarm advertised on 127.0.0.1. Leaves an
# engine that is a manager already as it is; refuses a swarm worker.
#
# Prints `initialized` when it initialized the swarm (so the caller can leave it
# afterwards with `docker -H ENDPOINT swarm leave --force`), else `kept`.
#
# Usage: scripts/test-swarm.sh ENDPOINT
set -euo pipefail
ENDPOINT=${1:?usage: scripts/test-swarm.sh ENDPOINT}

swarm_info() { docker -H "$ENDPOINT" info --format "{{.Swarm.$1}}"; }

case $(swarm_info LocalNodeState) in
  inactive)
    docker -H "$ENDPOINT" swarm init --advertise-addr 127.0.0.1 >/dev/null
    echo initialized
    ;;
  active)
    if [[ $(swarm_info ControlAvailable) != true ]]; then
      echo "test-swarm.sh: the engine at $ENDPOINT is a swarm worker; the swarm tests need a manager" >&2
      exit 1
    fi
    echo kept
    ;;
  *)
    echo "test-swarm.sh: the swarm of the engine at $ENDPOINT is $(swarm_info LocalNodeState)" >&2
    exit 1
    ;;
esac
