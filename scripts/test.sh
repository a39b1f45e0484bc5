#!/usr/bin/env bash
# The whole test suite of vtpm on a fresh Debian machine: installs the Debian
# packages the tests drive (tpm2-tools, libtss2-dev, swtpm, pkg-config, QEMU
# with SeaBIOS) when missing, then runs `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."

want=(tpm2-tools libtss2-dev swtpm swtpm-tools pkg-config qemu-system-x86 seabios)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cargo test --workspace "$@"
