#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Installs the Debian 12 packages cachasided needs to build, test and run
# its demo. Needs root (or sudo); does nothing when everything is there.
set -eu
PKGS="build-essential autoconf automake pkg-config libevent-dev libhiredis-dev libinih-dev
libssl-dev libjansson-dev check redis-server redis-tools systemd curl python3 python3-redis valgrind
prometheus chromium nginx-light openssl"
# tests/test_https.py runs nginx (nginx-light) as an https upstream with
# certificates it makes with the openssl command.
# tests/test_client_libs.py runs the node clients: Debian's nodejs and npm when
# there is no node or npm yet (a node of another origin, such as
# NodeSource's, which bundles npm, is kept).
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
# --fuzzing: also clang and libFuzzer, for configure --enable-fuzzing (fuzz/smoke.sh).
# --bench: also the peers bench/run measures against and gnuplot for its
# chart. Where systemd runs, Debian starts nginx (port 80) and Varnish
# (6081) as services on install; bench/run starts its own on free ports.
case "${1:-}" in
--fuzzing) PKGS="$PKGS clang libfuzzer-14-dev libclang-rt-14-dev" ;;
--bench) PKGS="$PKGS nutcracker varnish nginx-light gnuplot-nox" ;;
esac
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# redis-server's package starts a service on 6379 where systemd runs; the
# demo and the tests start their own servers on free ports instead.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
