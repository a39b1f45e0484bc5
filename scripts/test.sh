#!/usr/bin/env bash
# The whole test suite of vtpm on a fresh Debian machine: installs the Debian
# packages the tests drive (tpm2-tools, libtss2-dev, swtpm, pkg-config, QEMU
# with SeaBIOS and qemu-utils, Clevis, libvirt) when missing, then runs
# `cargo test --workspace`, the seccomp kill test and scripts/libvirt-test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

want=(tpm2-tools libtss2-dev swtpm swtpm-tools openssl pkg-config qemu-system-x86 qemu-utils seabios clevis clevis-tpm2
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients)

installed_version() {
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'
}

missing=()
for p in "${want[@]}"; do
  [ -n "$(installed_version "$p")" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
  $SUDO apt-get update -qq
  extra=()
  # Some images ship qemu-utils from bookworm-backports (10.x) while the
  # configured suites offer only bookworm's QEMU (7.2); the backports
  # qemu-utils Breaks the older qemu-system-common, so a plain install of
  # qemu-system-x86 refuses. Install the whole QEMU set at one version: the
  # candidate of qemu-system-x86 (the backports one when that suite is
  # configured, bookworm's otherwise), moving qemu-utils to it if needed.
  if [[ " ${missing[*]} " == *" qemu-system-x86 "* || " ${missing[*]} " == *" qemu-utils "* ]]; then
    utils=$(installed_version qemu-utils)
    sysv=$(apt-cache policy qemu-system-x86 | sed -n 's/^ *Candidate: //p')
    if [ -n "$sysv" ] && [ "$sysv" != "(none)" ] && [ "$utils" != "$sysv" ]; then
      echo "test.sh: installing qemu-system-x86 and qemu-utils both at $sysv (qemu-utils: ${utils:-none})"
      extra+=("qemu-utils=$sysv" "qemu-system-x86=$sysv" --allow-downgrades)
      kept=()
      for p in "${missing[@]}"; do
        [ "$p" = qemu-system-x86 ] || [ "$p" = qemu-utils ] || kept+=("$p")
      done
      missing=("${kept[@]}")
    fi
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" "${extra[@]}"
fi

cargo test --workspace "$@"
# vtpm under libvirt (slow: two domains under QEMU TCG), with the binary the
# tests just built; skipped (exit 77) when libvirtd cannot run here.
rc=0
bash scripts/libvirt-test.sh "${CARGO_TARGET_DIR:-target}/debug/vtpm" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || exit "$rc"
# Last, since it rebuilds the binary with it: the forbidden-syscall test
# needs a hook compiled in only for it (src/seccomp.rs).
cargo test --features seccomp-test-hook --test seccomp
