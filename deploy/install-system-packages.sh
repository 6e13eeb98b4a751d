#!/usr/bin/env bash
# Install the servers the cluster check needs, if missing: Debian's postgresql and redis-server.
# Uses apt-get as root, or through sudo; says what to install otherwise.
set -euo pipefail
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || command -v initdb > /dev/null || missing+=(postgresql)
command -v redis-server > /dev/null || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo > /dev/null; then SUDO="sudo"; else
    echo "install these packages first (as root): apt-get install ${missing[*]}" >&2; exit 1
fi
echo "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q > /dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" > /dev/null
