#!/usr/bin/env bash
# Boot Debian's kernel in QEMU with a busybox initramfs holding vtpm,
# tpm2-tools (device TCTI) and swtpm_ioctl, run the guest checks
# (scripts/guest/checks-*.sh) inside, and print their PASS/FAIL lines.
#
#   scripts/guest/run.sh VTPM_BINARY [CHECKS.sh ...]
#   scripts/guest/run.sh --build DIR VTPM_BINARY [CHECKS.sh ...]
#
# With --build, the kernel and the initramfs are written to DIR/vmlinuz and
# DIR/initrd.gz and nothing is booted (for tests that boot the guest their
# own way, libvirt for one).
#
# Exit status: 0 when the guest ran every check file and no check failed,
# 1 when a check failed or the guest did not finish, 77 when the guest
# cannot be built here (no QEMU, no kernel package reachable).
#
# The kernel (package linux-image-amd64's current version) and busybox-static
# are fetched with `apt-get download` into $GUEST_CACHE (default
# ~/.cache/vtpm-guest) once; nothing is installed on the host. KVM is used
# with GUEST_KVM=1, TCG otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build_only=""
if [ "${1:-}" = --build ]; then
  build_only="${2:?--build needs a directory}"
  shift 2
fi
vtpm="${1:?usage: run.sh VTPM_BINARY [CHECKS.sh ...]}"
shift
checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=("$here"/checks-*.sh)
cache="${GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vtpm-guest}"
timeout_s="${GUEST_TIMEOUT:-900}"
qemu=/usr/bin/qemu-system-x86_64

skip() { echo "SKIP guest: $*"; exit 77; }
[ -x "$qemu" ] || skip "$qemu is not installed"
[ -x "$vtpm" ] || { echo "run.sh: $vtpm is not an executable"; exit 1; }
for t in /usr/bin/tpm2 /usr/bin/swtpm_ioctl; do
  [ -x "$t" ] || skip "$t is not installed (packages tpm2-tools, swtpm-tools)"
done

# --- kernel and busybox, fetched once -------------------------------------
mkdir -p "$cache"
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
[ -n "$kpkg" ] || skip "apt knows no linux-image-amd64 package"
kver=${kpkg#linux-image-}
kdir="$cache/$kpkg"
if [ ! -f "$kdir/boot/vmlinuz-$kver" ]; then
  (cd "$cache" && rm -f "$kpkg"_*.deb && apt-get download -q "$kpkg" >/dev/null 2>&1) ||
    skip "apt-get download $kpkg failed"
  rm -rf "$kdir.tmp" && dpkg-deb -x "$cache/$kpkg"_*.deb "$kdir.tmp" && mv "$kdir.tmp" "$kdir"
  rm -f "$cache/$kpkg"_*.deb
fi
bb="$cache/busybox/bin/busybox"
if [ ! -x "$bb" ]; then
  (cd "$cache" && rm -f busybox-static_*.deb && apt-get download -q busybox-static >/dev/null 2>&1) ||
    skip "apt-get download busybox-static failed"
  rm -rf "$cache/busybox.tmp" && dpkg-deb -x "$cache"/busybox-static_*.deb "$cache/busybox.tmp" &&
    mv "$cache/busybox.tmp" "$cache/busybox"
  rm -f "$cache"/busybox-static_*.deb
fi

# --- the initramfs -----------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,proc,sys,dev,tmp,run,etc,checks,lib/modules/"$kver"}
cp "$bb" "$root/bin/busybox"

# A file and, for an ELF, every library it loads, at the same paths.
add_file() {
  local f="$1"
  [ -e "$root$f" ] && return 0
  mkdir -p "$root$(dirname "$f")"
  cp -L "$f" "$root$f"
  if [ "$(head -c4 "$f" | tail -c3)" = ELF ]; then
    ldd "$f" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' |
      while read -r lib; do add_file "$lib"; done
  fi
}
strip -o "$root/usr/bin/vtpm" "$vtpm" 2>/dev/null || cp "$vtpm" "$root/usr/bin/vtpm"
chmod 755 "$root/usr/bin/vtpm"
ldd "$vtpm" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' |
  while read -r lib; do add_file "$lib"; done
add_file /usr/bin/tpm2
add_file /usr/bin/swtpm_ioctl
# tpm2-tools loads its TCTI with dlopen: ldd does not see it.
for l in /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0; do add_file "$l"; done
ln -s libtss2-tcti-device.so.0 "$root/usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so"
for t in /usr/bin/tpm2_*; do ln -sf tpm2 "$root/usr/bin/$(basename "$t")"; done

# The modules the front ends need, with their dependencies (depmod runs in
# the guest: the kernel package ships no modules.dep).
mods="$kdir/lib/modules/$kver"
for m in kernel/fs/fuse/fuse.ko kernel/fs/fuse/cuse.ko kernel/drivers/char/tpm/tpm_vtpm_proxy.ko; do
  for f in "$mods/$m" "$mods/$m.xz"; do
    if [ -f "$f" ]; then
      mkdir -p "$root/lib/modules/$kver/$(dirname "$m")"
      case "$f" in
        *.xz) xz -dc "$f" > "$root/lib/modules/$kver/$m" ;;
        *) cp "$f" "$root/lib/modules/$kver/$m" ;;
      esac
    fi
  done
done
cp "$mods"/modules.builtin* "$root/lib/modules/$kver/" 2>/dev/null || true

cp "$here/init" "$root/init"
cp "$here/lib.sh" "$root/checks/lib.sh"
for c in "${checks[@]}"; do cp "$c" "$root/checks/"; done
chmod 755 "$root/init"
(cd "$root" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"

if [ -n "$build_only" ]; then
  mkdir -p "$build_only"
  cp "$kdir/boot/vmlinuz-$kver" "$build_only/vmlinuz"
  cp "$work/initrd.gz" "$build_only/initrd.gz"
  echo "guest: kernel $kver and initramfs written to $build_only"
  exit 0
fi

# --- boot ------------------------------------------------------------------
accel=tcg cpu=max
# KVM only on request: nested KVM on the development VMs aborts QEMU on an MSR
# it cannot set, and TCG boots this kernel in a few seconds anyway.
if [ -n "${GUEST_KVM:-}" ]; then accel=kvm cpu=host; fi
console="$work/console.log"
start=$(date +%s.%N)
set +e
timeout "$timeout_s" "$qemu" -machine q35,accel="$accel" -cpu "$cpu" -m 1024 -smp 1 \
  -kernel "$kdir/boot/vmlinuz-$kver" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3" \
  -display none -monitor none -serial "file:$console" -no-reboot -nodefaults </dev/null
qrc=$?
set -e
end=$(date +%s.%N)
tr -d '\r' < "$console" > "$work/console.txt"

# --- report ----------------------------------------------------------------
up=$(sed -n 's/^GUEST-UP \([0-9.]*\).*/\1/p' "$work/console.txt" | head -1)
echo "guest: kernel $kver, accel $accel, qemu exit $qrc, wall $(awk "BEGIN{printf \"%.1f\", $end - $start}") s, kernel boot to init ${up:-?} s"
grep -E '^(PASS|FAIL|SKIP) |^GUEST-CHECKS |^  ' "$work/console.txt" || true
npass=$(grep -c '^PASS ' "$work/console.txt" || true)
nfail=$(grep -c '^FAIL ' "$work/console.txt" || true)
echo "guest: $npass passed, $nfail failed"
if ! grep -q '^GUEST-DONE' "$work/console.txt"; then
  echo "guest: did not finish; console tail:"
  tail -40 "$work/console.txt"
  exit 1
fi
[ "$nfail" -eq 0 ] && [ "$npass" -gt 0 ]
