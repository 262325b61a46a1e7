#!/usr/bin/env bash
# Builds the small test and demo image `poolmanager/testnode:latest` with
# `docker import` from Debian's busybox-static: no registry needed. Its default
# command serves "ok" over HTTP on port 80; it also has sh, nc, sleep and friends.
#
# Usage: scripts/test-image.sh [DOCKER_ENDPOINT]   (default: $DOCKER_HOST or the local socket)
set -euo pipefail
ENDPOINT=${1:-${DOCKER_HOST:-unix:///var/run/docker.sock}}
IMAGE=${POOLMANAGER_TEST_IMAGE:-poolmanager/testnode:latest}

if docker -H "$ENDPOINT" image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
if ! dpkg -s busybox-static >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in sh httpd sleep nc echo cat ls true kill ps; do ln -s busybox "$root/bin/$applet"; done
echo ok >"$root/www/index.html"
tar -C "$root" -c . | docker -H "$ENDPOINT" import \
  -c 'CMD ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]' - "$IMAGE" >/dev/null
echo "built $IMAGE on $ENDPOINT" >&2
