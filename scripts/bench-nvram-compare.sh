#!/usr/bin/env bash
# Durable 4 KiB commit latency of the NVRAM before and after a change, in one
# run: builds the nvram bench (benches/nvram.rs) of REV and of the working
# tree, then runs their summaries alternately ROUNDS times, so both see the
# same disk. Prints each round and the ratio of the medians (after / before).
#
#   scripts/bench-nvram-compare.sh [REV] [ROUNDS]
#
# REV defaults to 0dd69b0, the last commit writing format 1 (one copy of each
# record); ROUNDS to 5. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-0dd69b0}
rounds=${2:-5}
old_src=target/bench-compare/src
old_target=target/bench-compare/target

if [ ! -d "$old_src" ]; then
  git worktree add --detach "$old_src" "$rev" >/dev/null
fi
git -C "$old_src" checkout -q --detach "$rev"

bench_bin() { # DIR TARGET_DIR -> path of the nvram bench executable
  (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench --bench nvram --no-run 2>&1) |
    sed -n 's/.*Executable benches\/nvram.rs (\(.*\))/\1/p' | tail -1
}
before=$(bench_bin "$old_src" "$PWD/$old_target")
after=$(bench_bin . "$PWD/target")
[ -x "$before" ] && [ -x "$after" ] || { echo "bench build failed" >&2; exit 1; }

summary() { # BIN -> "raw_us nvram_us" (criterion's own benchmarks filtered out)
  "$1" --bench no-criterion-benchmark 2>/dev/null | awk '
    /raw pwrite 4 KiB/ {raw=$(NF-2)}
    /nvram write 4 KiB \(durable\)/ {for (i=1;i<=NF;i++) if ($i=="us") nv=$(i-1)}
    END {print raw, nv}'
}

echo "round  before: raw / nvram (us)   after: raw / nvram (us)"
: > target/bench-compare/rounds
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then b=$(summary "$before"); a=$(summary "$after")
  else a=$(summary "$after"); b=$(summary "$before"); fi
  echo "$b $a" >> target/bench-compare/rounds
  printf '%5d  %8s / %-8s          %8s / %-8s\n' "$r" $b $a
done
awk '
  {br[NR]=$1; bn[NR]=$2; ar[NR]=$3; an[NR]=$4; bq[NR]=$2/$1; aq[NR]=$4/$3}
  function med(a,   i,j,t,k,s) { k=0; for (i in a) s[++k]=a[i];
    for (i=1;i<=k;i++) for (j=i+1;j<=k;j++) if (s[j]+0<s[i]+0) {t=s[i];s[i]=s[j];s[j]=t}
    return s[int((k+1)/2)] }
  END {
    b=med(bn); a=med(an); qb=med(bq); qa=med(aq);
    printf "median durable 4 KiB commit: before %.1f us, after %.1f us: after/before = %.3f\n", b, a, a/b
    printf "median of each run'"'"'s commit / interleaved raw pwrite+fdatasync: before %.3f, after %.3f: after/before = %.3f\n", qb, qa, qa/qb
    print "(the second figure is immune to the disk speeding up or slowing down between runs)"
  }' target/bench-compare/rounds
