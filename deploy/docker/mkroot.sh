#!/usr/bin/env bash
# Assembles the runtime root file system of cofre's images, in the Dockerfile's build stage.
# The result holds only what the given binaries need to run: the shared libraries ldd finds
# for them (and the dynamic loader), CA certificates, a passwd/group with the unprivileged
# user 10001, nsswitch.conf, and for every Debian package a library came from its dpkg status
# entry (under var/lib/dpkg/status.d/, as distroless images do, so image scanners see the
# versions) and its copyright file. No shell, no package manager, no compiler.
#
# Usage: mkroot.sh ROOT BINARY...
set -euo pipefail

readonly uid=10001
root=${1:?usage: mkroot.sh ROOT BINARY...}
shift
[[ $# -gt 0 ]] || { echo "mkroot.sh: no binaries given" >&2; exit 2; }

mkdir -p "$root"/{etc,usr/local/bin,var/lib/dpkg/status.d,var/lib/cofre,tmp}
chmod 1777 "$root/tmp"
chown "$uid:$uid" "$root/var/lib/cofre"
chmod 0750 "$root/var/lib/cofre"

cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
cofre:x:$uid:$uid:cofre:/var/lib/cofre:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
nogroup:x:65534:
cofre:x:$uid:
EOF
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

# Every shared object the binaries load at start, by the path the loader looks it up under,
# and libgcc_s, which glibc loads at run time for thread cancellation and unwinding, and
# libpq with what it links, which the services load when COFRE_DB names PostgreSQL
# (include/cofre/pq.h).
# awk reads all of ldconfig's output (an early exit would kill it with SIGPIPE: pipefail).
gcc_s=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" && !found { print $NF; found = 1 }')
[[ -n $gcc_s ]] || { echo "mkroot.sh: libgcc_s.so.1 not found" >&2; exit 1; }
pq=$(ldconfig -p | awk '$1 == "libpq.so.5" && !found { print $NF; found = 1 }')
[[ -n $pq ]] || { echo "mkroot.sh: libpq.so.5 not found" >&2; exit 1; }
libs=$({ for bin in "$@" "$pq"; do ldd "$bin"; done
         echo "$gcc_s => $gcc_s (0x0)"; echo "$pq => $pq (0x0)"; } |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
for lib in $libs; do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done

# The packages those files belong to (merged /usr: dpkg may know either spelling).
pkgs=$(for lib in $libs; do
    real=$(readlink -f "$lib")
    dpkg-query -S "$lib" 2>/dev/null || dpkg-query -S "$real" 2>/dev/null ||
        dpkg-query -S "${real#/usr}" 2>/dev/null || true
done | cut -d: -f1 | sort -u)
pkgs="$pkgs ca-certificates"
for pkg in $pkgs; do
    dpkg-query -s "$pkg" >"$root/var/lib/dpkg/status.d/$pkg"
    if [[ -f /usr/share/doc/$pkg/copyright ]]; then
        install -D -m 0644 "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
    fi
done
echo "mkroot.sh: $(wc -w <<<"$libs") libraries from $(wc -w <<<"$pkgs") packages" >&2
