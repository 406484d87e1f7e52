#!/bin/sh
# Installs every Debian package fleetcert needs to build and test, as listed
# in .ci/packages/*.list. Uses sudo when not root. Does nothing when all are
# already installed.
set -eu
cd "$(dirname "$0")/.."
pkgs=$(cat .ci/packages/*.list | sed -e 's/#.*//' | tr -s ' \n' '\n' | sort -u | grep -v '^$')
missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
