#!/usr/bin/env bash
# Install what the tests need from Debian, if missing: postgresql and redis-server (the cluster
# check), chromium and chromium-driver (the browser test of the UI), docker.io, docker-compose and
# debootstrap (the container check, deploy/docker/stack.py).
# Uses apt-get as root, or through sudo; says what to install otherwise.
set -euo pipefail
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || command -v initdb > /dev/null || missing+=(postgresql)
command -v redis-server > /dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v dockerd > /dev/null || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v docker-compose > /dev/null || missing+=(docker-compose)
command -v debootstrap > /dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo > /dev/null; then SUDO="sudo"; else
    echo "install these packages first (as root): apt-get install ${missing[*]}" >&2; exit 1
fi
echo "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q > /dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" > /dev/null
