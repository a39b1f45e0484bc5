# Sourced by the guest checks (. /checks/lib.sh). Contract: every check
# prints exactly one line, `PASS name` or `FAIL name: why`; a FAIL line may be
# followed by lines starting with two spaces (the command's output). Anything
# else a check prints is ignored by the host, so keep tool output in files.

# pass NAME / fail NAME WHY
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# check NAME COMMAND...: PASS when COMMAND exits 0, else FAIL with its output.
check() {
  name="$1"; shift
  if "$@" >/tmp/check.out 2>&1; then
    pass "$name"
  else
    fail "$name" "exit $? from: $*"
    tail -n 15 /tmp/check.out | sed 's/^/  /'
  fi
}

# wait_for PATH [SECONDS]: wait until PATH exists (default 20 s).
wait_for() {
  n=0
  while [ ! -e "$1" ]; do
    n=$((n + 1))
    [ "$n" -gt $(( ${2:-20} * 10 )) ] && return 1
    usleep 100000
  done
  return 0
}

# stop_pid PID: TERM, then KILL after 10 s; returns when it is gone.
stop_pid() {
  kill "$1" 2>/dev/null
  n=0
  while kill -0 "$1" 2>/dev/null; do
    n=$((n + 1))
    [ "$n" -eq 100 ] && kill -9 "$1" 2>/dev/null
    usleep 100000
  done
  wait "$1" 2>/dev/null
  return 0
}
