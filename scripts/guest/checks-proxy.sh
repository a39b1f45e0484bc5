# vtpm chardev --vtpm-proxy inside the guest: the kernel's vTPM proxy gives
# a /dev/tpmN and /dev/tpmrmN backed by vtpm; tpm2-tools drive both through
# the device TCTI; a persistent key and NV data survive a restart of vtpm on
# the same state; stopping vtpm removes the device.
. /checks/lib.sh

state=/tmp/proxy-state
mkdir -p "$state"
# H(0^32 || 0x5a^32): PCR 16 after one extend with 32 octets 0x5a.
want_pcr=d342b8b5fddabfc1d94e5c8c53388211df379791089b772ec02a15d94adcc7f5

# start_vtpm N [OPTION...]: start vtpm on $state (run N), set $pid, $tpm and $tpmrm.
start_vtpm() {
  run=$1
  shift
  vtpm chardev --vtpm-proxy --tpm2 --tpmstate dir="$state" \
    --flags not-need-init,startup-clear --log file=/tmp/proxy-vtpm$run.log,level=20 "$@" \
    >/tmp/proxy-out$run 2>/tmp/proxy-err$run &
  pid=$!
  n=0
  until grep -q '^New TPM device: /dev/tpm[0-9]' /tmp/proxy-out$run; do
    n=$((n + 1))
    if [ "$n" -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    usleep 100000
  done
  num=$(sed -n 's|^New TPM device: /dev/tpm\([0-9]*\) .*|\1|p' /tmp/proxy-out$run)
  tpm=/dev/tpm$num
  tpmrm=/dev/tpmrm$num
  wait_for "$tpm" 60 && wait_for "$tpmrm" 60
}

# fail_with NAME WHY FILE...: a FAIL line followed by the files' tails.
fail_with() {
  name="$1" why="$2"
  shift 2
  fail "$name" "$why"
  for f in "$@"; do tail -n 8 "$f" 2>/dev/null | sed 's/^/  /'; done
}

if ! modprobe tpm_vtpm_proxy || [ ! -c /dev/vtpmx ]; then
  fail proxy-module "tpm_vtpm_proxy did not load"
  exit 0
fi

if start_vtpm 1; then
  pass proxy-device-created
else
  fail_with proxy-device-created "no device announced or created" /tmp/proxy-out1 /tmp/proxy-err1 /tmp/proxy-vtpm1.log
  kill "$pid" 2>/dev/null
  exit 0
fi

# The kernel asks for its locality in band before its commands (level 20
# logs every command and every TPM2_SetLocality).
if grep -q 'in-band TPM2_SetLocality(0)$' /tmp/proxy-vtpm1.log; then
  pass proxy-kernel-locality-command
else
  fail_with proxy-kernel-locality-command "no TPM2_SetLocality from the kernel answered" /tmp/proxy-vtpm1.log
fi

check proxy-getrandom-tpm tpm2_getrandom -T device:"$tpm" 16 --hex
check proxy-getrandom-tpmrm tpm2_getrandom -T device:"$tpmrm" 32 --hex

export TPM2TOOLS_TCTI=device:$tpmrm
d=5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
if tpm2_pcrextend 16:sha256=$d >/tmp/pcr.out 2>&1 &&
  tpm2_pcrread sha256:16 >>/tmp/pcr.out 2>&1 &&
  tr 'A-F' 'a-f' </tmp/pcr.out | grep -q "0x$want_pcr"; then
  pass proxy-pcrextend-pcrread
else
  fail_with proxy-pcrextend-pcrread "PCR 16 is not H(0||d)" /tmp/pcr.out
fi

if tpm2_createprimary -C o -g sha256 -G ecc -c /tmp/primary.ctx >/tmp/cp.out 2>&1 &&
  tpm2_evictcontrol -C o -c /tmp/primary.ctx 0x81000001 >>/tmp/cp.out 2>&1 &&
  tpm2_readpublic -c 0x81000001 -n /tmp/key1.name >>/tmp/cp.out 2>&1; then
  pass proxy-createprimary-evictcontrol
else
  fail_with proxy-createprimary-evictcontrol "could not make a persistent key" /tmp/cp.out
fi

printf 'vtpm behind the vTPM proxy\n' >/tmp/nv.in
size=$(wc -c </tmp/nv.in)
if tpm2_nvdefine 0x1500016 -C o -s "$size" -a "ownerread|ownerwrite" >/tmp/nv.out 2>&1 &&
  tpm2_nvwrite 0x1500016 -C o -i /tmp/nv.in >>/tmp/nv.out 2>&1 &&
  tpm2_nvread 0x1500016 -C o -s "$size" -o /tmp/nv.read1 >>/tmp/nv.out 2>&1 &&
  cmp -s /tmp/nv.in /tmp/nv.read1; then
  pass proxy-nvdefine-nvwrite-nvread
else
  fail_with proxy-nvdefine-nvwrite-nvread "NV data not read back" /tmp/nv.out
fi

stop_pid "$pid"
n=0
while [ -e "$tpm" ] && [ "$n" -lt 100 ]; do n=$((n + 1)); usleep 100000; done
if [ ! -e "$tpm" ] && [ ! -e "$tpmrm" ]; then
  pass proxy-stop-removes-device
else
  fail proxy-stop-removes-device "$tpm still exists after vtpm ended"
fi

# The second run also has a control channel, driven by swtpm_ioctl.
ctrl=/tmp/proxy-ctrl.sock
if start_vtpm 2 --ctrl type=unixio,path=$ctrl; then
  pass proxy-restart
else
  fail_with proxy-restart "no device after the restart" /tmp/proxy-out2 /tmp/proxy-err2 /tmp/proxy-vtpm2.log
  kill "$pid" 2>/dev/null
  exit 0
fi
export TPM2TOOLS_TCTI=device:$tpmrm

if tpm2_readpublic -c 0x81000001 -n /tmp/key2.name >/tmp/rp.out 2>&1 &&
  cmp -s /tmp/key1.name /tmp/key2.name; then
  pass proxy-restart-persistent-key
else
  fail_with proxy-restart-persistent-key "0x81000001 missing or changed" /tmp/rp.out
fi

if tpm2_nvread 0x1500016 -C o -s "$size" -o /tmp/nv.read2 >/tmp/nv2.out 2>&1 &&
  cmp -s /tmp/nv.in /tmp/nv.read2; then
  pass proxy-restart-nv-data
else
  fail_with proxy-restart-nv-data "NV index 0x1500016 missing or changed" /tmp/nv2.out
fi

# PCRs are volatile: a new power-on starts them from zero.
if tpm2_pcrread sha256:16 >/tmp/pcr2.out 2>&1 &&
  grep -q "0x0000000000000000000000000000000000000000000000000000000000000000" /tmp/pcr2.out; then
  pass proxy-restart-pcr-reset
else
  fail_with proxy-restart-pcr-reset "PCR 16 not reset by the new Startup(CLEAR)" /tmp/pcr2.out
fi

check proxy-getrandom-after-restart tpm2_getrandom -T device:"$tpm" 8 --hex

check proxy-ctrl-get-established swtpm_ioctl --unix "$ctrl" -e
check proxy-ctrl-cancel swtpm_ioctl --unix "$ctrl" -C
check proxy-ctrl-get-capabilities swtpm_ioctl --unix "$ctrl" -c
check proxy-ctrl-get-config swtpm_ioctl --unix "$ctrl" -g
# CMD_SHUTDOWN ends vtpm, which removes the device.
if swtpm_ioctl --unix "$ctrl" -s >/tmp/sd.out 2>&1; then
  n=0
  while { kill -0 "$pid" 2>/dev/null || [ -e "$tpm" ]; } && [ "$n" -lt 100 ]; do
    n=$((n + 1))
    usleep 100000
  done
  if [ -e "$tpm" ] || kill -0 "$pid" 2>/dev/null; then
    fail_with proxy-ctrl-shutdown "vtpm or $tpm still there after CMD_SHUTDOWN" /tmp/proxy-vtpm2.log
  else
    pass proxy-ctrl-shutdown
  fi
else
  fail_with proxy-ctrl-shutdown "swtpm_ioctl -s failed" /tmp/sd.out
fi
stop_pid "$pid"

# --daemon: the parent prints the device and returns once it is served.
if vtpm chardev --vtpm-proxy --tpm2 --tpmstate dir="$state" -d --pid file=/tmp/proxy.pid \
  --log file=/tmp/proxy-vtpm3.log >/tmp/proxy-out3 2>&1 &&
  num=$(sed -n 's|^New TPM device: /dev/tpm\([0-9]*\) .*|\1|p' /tmp/proxy-out3) &&
  [ -n "$num" ] && wait_for /dev/tpmrm$num 60 &&
  tpm2_getrandom -T device:/dev/tpmrm$num 8 --hex >/tmp/d.out 2>&1 &&
  tpm2_nvread 0x1500016 -C o -s "$size" -o /tmp/nv.read3 -T device:/dev/tpmrm$num >>/tmp/d.out 2>&1 &&
  cmp -s /tmp/nv.in /tmp/nv.read3; then
  pass proxy-daemon
else
  fail_with proxy-daemon "daemonized vtpm did not serve its device" /tmp/proxy-out3 /tmp/d.out /tmp/proxy-vtpm3.log
fi
if [ -s /tmp/proxy.pid ]; then
  dpid=$(cat /tmp/proxy.pid)
  kill "$dpid"
  n=0
  while { kill -0 "$dpid" 2>/dev/null || [ -e "/dev/tpm$num" ]; } && [ "$n" -lt 100 ]; do
    n=$((n + 1))
    usleep 100000
  done
  if kill -0 "$dpid" 2>/dev/null || [ -e "/dev/tpm$num" ]; then
    fail proxy-daemon-stop "the daemon or /dev/tpm$num outlived SIGTERM"
  else
    pass proxy-daemon-stop
  fi
else
  fail proxy-daemon-stop "no pid file"
fi

# Nothing the kernel sent went unanswered or failed (timeouts, TPM errors).
dmesg | grep -i tpm >/tmp/dmesg.tpm
if grep -qiE 'timed out|error|fail' /tmp/dmesg.tpm; then
  fail_with proxy-kernel-log-clean "the kernel logged TPM errors" /tmp/dmesg.tpm
else
  pass proxy-kernel-log-clean
fi
