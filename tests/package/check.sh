#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# make check-package: the Debian package as a user gets it (docs/packaging.md).
#
# 1. builds it with scripts/package.sh and runs lintian (no error, no warning);
# 2. installs it with apt into a fresh Debian 12 root (debootstrap + chroot),
#    or, when debootstrap cannot reach a mirror, unpacks it with dpkg-deb and
#    creates the user with systemd-sysusers --root;
# 3. checks the user, the configuration's owner and mode, `cachasided -t` as
#    the service user on the shipped file, `systemd-analyze verify` on the
#    units, and that the paths the man pages name are there;
# 4. (fresh root only) end to end: the commands of the installed unit start
#    cachasided as its user, with redis-server and the example upstream;
#    uncomment the example namespace, run the unit's ExecReload lines, and
#    `redis-cli -p 7379 HGETALL product:p-001` must answer the record; then
#    purge, and the configuration must be gone and the user kept.
# Runs as root. The fresh root lives in a temporary directory, its servers in
# a network namespace of their own: nothing on this machine is changed but
# the build dependencies that scripts/package.sh installs.
#
# Environment: PACKAGE_OUT (default build-deb/), DEBIAN_MIRROR (default
# http://deb.debian.org/debian), PACKAGE_ROOT_TAR (a tar of a fresh
# debootstrap root, containing root/, used instead of running debootstrap),
# PACKAGE_ROOT=extract (skip debootstrap).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${PACKAGE_OUT:-$top/build-deb}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

[ "$(id -u)" -eq 0 ] || { echo "check-package: run as root (it builds a chroot)" >&2; exit 1; }
work=$(mktemp -d /tmp/cachasided-pkg.XXXXXX)
root=$work/root
cleanup() {
    status=$?
    # Servers started in the root's namespace die with it; unmount first.
    umount -l "$root/proc" 2>/dev/null || true
    rm -rf --one-file-system "$work"
    exit $status
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
step() { echo "--- $*"; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
step "build: scripts/package.sh $out"
sh "$top/scripts/package.sh" "$out" >"$work/debs"
cat "$work/debs"
version=$(sed -n 's/^AC_INIT(\[cachasided\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
debver=$(cd "$top" && dpkg-parsechangelog -S Version)
[ "${debver%-*}" = "$version" ] || fail "debian/changelog says $debver, configure.ac AC_INIT says $version"
arch=$(dpkg --print-architecture)
deb=$out/cachasided_${debver}_$arch.deb
exdeb=$out/cachasided-example-upstream_${debver}_$arch.deb
for f in "$deb" "$exdeb" "$out/cachasided-dbgsym_${debver}_$arch.deb"; do
    grep -qx "$f" "$work/debs" || fail "scripts/package.sh did not build $f"
done
ok "built $debver (configure.ac $version), with -dbgsym"

step "lintian"
command -v lintian >/dev/null || apt-get install -y -qq --no-install-recommends lintian >/dev/null
lintian --fail-on error,warning "$out/cachasided_${debver}_$arch.changes" 2>&1 |
    grep -v 'running with root privileges' | tee "$work/lintian" || true
grep -q '^[EW]:' "$work/lintian" && fail "lintian reports errors or warnings"
ok "lintian: no error, no warning"

step "contents"
dpkg-deb -c "$deb" | awk '{print $1, $6}' >"$work/contents"
grep -q 'example-upstream\|example_upstream' "$work/contents" && fail "the daemon's package carries the example upstream"
grep -qx -- '-rw-r----- ./etc/cachasided/cachasided.ini' "$work/contents" ||
    fail "/etc/cachasided/cachasided.ini not shipped 0640"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/cachasided/cachasided.ini "$work/control/conffiles" || fail "cachasided.ini is not a conffile"
ok "example upstream apart, configuration a 0640 conffile"

# A fresh root: debootstrap (about 2 minutes), else the files unpacked.
mode=chroot
if [ "${PACKAGE_ROOT:-}" = extract ]; then
    mode=extract
elif [ -n "${PACKAGE_ROOT_TAR:-}" ]; then
    step "fresh root: $PACKAGE_ROOT_TAR"
    tar -C "$work" -xf "$PACKAGE_ROOT_TAR"
else
    step "fresh root: debootstrap bookworm $mirror"
    command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
        tail -n 5 "$work/debootstrap.log"
        echo "debootstrap failed: falling back to dpkg-deb -x checks (no apt install, no end-to-end run)"
        rm -rf "$root"
        mode=extract
    fi
fi

if [ $mode = chroot ]; then
    step "apt install ./cachasided_${debver}_$arch.deb ./cachasided-example-upstream... redis-server (in the root)"
    # Nothing may start a service of the host's network from the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    mkdir -p "$root/debs"
    cp "$deb" "$exdeb" "$root/debs/"
    mount -t proc proc "$root/proc"
    chroot "$root" apt-get update -qq
    chroot "$root" apt-get install -y -qq --no-install-recommends \
        "/debs/${deb##*/}" "/debs/${exdeb##*/}" redis-server >"$work/apt.log" 2>&1 ||
        { tail -n 30 "$work/apt.log"; fail "apt install in the fresh root"; }
    ok "installed with apt"
    inroot() { chroot "$root" "$@"; }
else
    step "dpkg-deb -x into an empty root, systemd-sysusers --root"
    mkdir -p "$root/etc"
    dpkg-deb -x "$deb" "$root"
    dpkg-deb -x "$exdeb" "$root"
    systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/cachasided.conf"
    inroot() { "$@"; }   # host commands on the root's files, paths prefixed below
fi
R=""; [ $mode = chroot ] || R=$root

step "the user, the configuration's owner and mode"
grep -q '^cachasided:x:[0-9]*:[0-9]*:[^:]*:/nonexistent:/usr/sbin/nologin$' "$root/etc/passwd" ||
    fail "no system user cachasided in the root's /etc/passwd"
grep -q '^cachasided:x:' "$root/etc/group" || fail "no group cachasided"
ok "user and group cachasided (no home, nologin)"
if [ $mode = chroot ]; then
    [ "$(inroot stat -c '%U:%G %a' /etc/cachasided/cachasided.ini)" = "root:cachasided 640" ] ||
        fail "cachasided.ini is $(inroot stat -c '%U:%G %a' /etc/cachasided/cachasided.ini), not root:cachasided 640"
    inroot dpkg-statoverride --list /etc/cachasided/cachasided.ini | grep -q 'root cachasided 0*640' ||
        fail "no dpkg-statoverride for the configuration (upgrades would reset it)"
    inroot setpriv --reuid=nobody --regid=nogroup --clear-groups cat /etc/cachasided/cachasided.ini >/dev/null 2>&1 &&
        fail "another user can read the configuration"
    ok "root:cachasided 0640 (statoverride), unreadable by nobody"
fi

step "cachasided -t on the shipped configuration"
if [ $mode = chroot ]; then
    inroot runuser -u cachasided -- cachasided -t -c /etc/cachasided/cachasided.ini 2>"$work/t" ||
        { cat "$work/t"; fail "cachasided -t as user cachasided"; }
    # Without -c: the default path the man page names.
    inroot runuser -u cachasided -- cachasided -t 2>&1 | grep -q '^/etc/cachasided/cachasided.ini: configuration is valid' ||
        fail "cachasided -t without -c does not read /etc/cachasided/cachasided.ini"
    inroot cachasided -V | grep -q "$version" || fail "cachasided -V does not say $version"
else
    "$root/usr/bin/cachasided" -t -c "$root/etc/cachasided/cachasided.ini" 2>"$work/t" ||
        { cat "$work/t"; fail "cachasided -t"; }
fi
cat "$work/t"
ok "the shipped configuration is valid"

step "systemd-analyze verify"
for u in cachasided.service cachasided-example-upstream.service; do
    if [ $mode = chroot ]; then
        inroot systemd-analyze verify --man=no "/lib/systemd/system/$u" >"$work/verify" 2>&1 ||
            { cat "$work/verify"; fail "systemd-analyze verify $u"; }
    else
        sed -e "s|=/usr/|=$root/usr/|g" "$root/lib/systemd/system/$u" >"$work/$u"
        systemd-analyze verify --man=no "$work/$u" >"$work/verify" 2>&1 ||
            { cat "$work/verify"; fail "systemd-analyze verify $u"; }
    fi
    [ -s "$work/verify" ] && { cat "$work/verify"; fail "systemd-analyze verify $u warns"; }
    ok "$u verifies"
done

step "the paths the man pages name"
# FILES of cachasided(8) and cachasided.ini(5), SYNOPSIS of the latter:
# each .TP path, sysconfdir being /etc for the package.
for m in cachasided.8 cachasided.ini.5; do
    sec=${m##*.}
    [ -f "$root/usr/share/man/man$sec/$m.gz" ] || fail "man page $m not in /usr/share/man/man$sec"
    awk '/^\.SH/ {files = ($2 == "FILES")} files && prev == ".TP" {print} {prev = $1}' "$top/man/$m" |
        sed -e 's/^\.[A-Z]* *//' -e 's/ //g' -e 's/\\-/-/g' -e 's|^sysconfdir|/etc|' >>"$work/manpaths"
done
sort -u "$work/manpaths" | while read -r p; do
    case $p in
    /run/*) d=${p#/run/}; d=${d%/}
        grep -qx "RuntimeDirectory=$d" "$root/lib/systemd/system/cachasided.service" ||
            fail "$p: the unit has no RuntimeDirectory=$d" ;;
    *.service) [ -f "$root/lib/systemd/system/$p" ] || fail "$p not in /lib/systemd/system" ;;
    /*) [ -e "$root$p" ] || fail "$p (named by the man page) is not installed" ;;
    *) fail "the man page names '$p': add a rule for it to tests/package/check.sh" ;;
    esac
    ok "man page path $p"
done
for f in /usr/bin/cachasided /usr/share/doc/cachasided/README.md \
    /usr/share/doc/cachasided/examples/catalogue.json /usr/share/doc/cachasided/packaging.md \
    /usr/share/doc/cachasided/monitoring.md /usr/share/cachasided/grafana/cachasided.json \
    /usr/share/cachasided/prometheus/alerts.yml /usr/share/cachasided/prometheus/alerts_test.yml \
    /usr/lib/sysusers.d/cachasided.conf; do
    [ -e "$root$f" ] || fail "$f not installed"
done
[ -e "$root/usr/bin/cachasided-example-upstream" ] && fail "the example upstream is in /usr/bin"
ok "binary, docs, example catalogue, dashboard and alerting rules, sysusers file"

if [ $mode = extract ]; then
    echo "check-package: passed (dpkg-deb -x checks only: no fresh root, no end-to-end run)"
    exit 0
fi

step "end to end in the root (own network namespace): the unit's commands"
sh "$top/tests/package/e2e.sh" "$root" || fail "end to end"

step "apt purge"
inroot apt-get purge -y -qq cachasided cachasided-example-upstream >"$work/apt.log" 2>&1 ||
    { tail -n 20 "$work/apt.log"; fail "apt purge"; }
[ -e "$root/etc/cachasided" ] && fail "/etc/cachasided is left after purge: $(ls -A "$root/etc/cachasided")"
[ -e "$root/usr/bin/cachasided" ] && fail "/usr/bin/cachasided left after purge"
inroot dpkg-statoverride --list /etc/cachasided/cachasided.ini >/dev/null && fail "statoverride left after purge"
grep -q '^cachasided:' "$root/etc/passwd" || fail "purge removed the user (it must stay)"
ok "purged: configuration and statoverride gone, user kept"
echo "check-package: passed"
