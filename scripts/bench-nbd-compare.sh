#!/usr/bin/env bash
# Durable NV_Write on an NBD export before (REV) and after a change, in one
# run: builds REV's vtpm in a worktree, then runs the load bench's NV_Write
# workloads with VTPM_BIN_BEFORE set, so that per NBD server (qemu-storage-
# daemon on a qcow2, and nbdkit when installed) the two builds answer
# NV_Write interleaved, each on a server of its own.
#
#   scripts/bench-nbd-compare.sh [REV] [-- load bench options]
#
# REV defaults to 46341ca, the last commit writing NVRAM format 2 (a
# commit's record and copy as two writes and a FLUSH). Run it on a quiet
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-46341ca}
shift || true
[ "${1:-}" = "--" ] && shift
old_src=target/bench-compare/src
old_target=target/bench-compare/target

if [ ! -d "$old_src" ]; then
  git worktree add --detach "$old_src" "$rev" >/dev/null
fi
git -C "$old_src" checkout -q --detach "$rev"
before_target=$PWD/$old_target
(cd "$old_src" && CARGO_TARGET_DIR="$before_target" cargo build --release --bin vtpm)
before=$before_target/release/vtpm
[ -x "$before" ] || { echo "the build of $rev failed" >&2; exit 1; }
VTPM_BIN_BEFORE=$before cargo bench -p vtpm --bench load -- --only NV_Write "$@"
