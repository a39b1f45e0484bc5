# vtpm's CUSE front end (`vtpm cuse -n vtpm0`): /dev/vtpm0 driven with
# tpm2-tools (device TCTI) and swtpm_ioctl's ioctls, state blobs saved and
# loaded both through the ioctl pieces and through read()/write()
# (SWTPM_IOCTL_BUFFERSIZE), and the state kept across a restart.
. /checks/lib.sh
export TPM2TOOLS_TCTI=device:/dev/vtpm0
dev=/dev/vtpm0
st=/tmp/cuse-state
log=/tmp/cuse.log
mkdir -p "$st"

# check_out NAME PATTERN COMMAND...: PASS when COMMAND exits 0 and its output matches PATTERN.
check_out() {
  name="$1"; pat="$2"; shift 2
  if "$@" >/tmp/check.out 2>&1 && grep -q -- "$pat" /tmp/check.out; then
    pass "$name"
  else
    fail "$name" "no '$pat' from: $*"
    tail -n 15 /tmp/check.out | sed 's/^/  /'
  fi
}

start_vtpm() {
  # vtpm cuse detaches (as swtpm does) once /dev/vtpm0 exists.
  vtpm cuse -n vtpm0 --tpmstate dir="$st" --tpm2 --pid file=/tmp/cuse.pid \
    --log file="$log",level=2 "$@" && test -c "$dev"
}

# second_instance: a second vtpm for the same name is refused in one line.
second_instance() {
  ! vtpm cuse -n vtpm0 --tpmstate dir=/tmp/other-state --tpm2 2>/tmp/second.err &&
    grep -q 'already exists' /tmp/second.err && [ "$(wc -l < /tmp/second.err)" -eq 1 ] &&
    [ ! -e /tmp/other-state ]
}

shutdown_vtpm() {
  # The pid first: vtpm removes its pid file as it exits.
  pid=$(cat /tmp/cuse.pid)
  swtpm_ioctl -s "$dev" && stopped
}

# alive PID: the process exists and is not a zombie (a detached vtpm is
# reparented to this guest's init, which does not reap it).
alive() {
  [ -n "$1" ] || return 1
  s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)
  [ -n "$s" ] && [ "$s" != Z ]
}

stopped() {
  # After PTM_SHUTDOWN the process ($pid) exits and the device disappears.
  n=0
  while [ -e "$dev" ] || alive "$pid"; do
    n=$((n + 1))
    if [ "$n" -gt 200 ]; then
      echo "after 10 s: device $(ls -l $dev 2>&1), process $pid state $(cut -d' ' -f3 /proc/$pid/stat 2>&1)"
      return 1
    fi
    usleep 50000
  done
}

check cuse-modprobe sh -c 'modprobe cuse && test -c /dev/cuse'
check cuse-start start_vtpm
if [ ! -c "$dev" ]; then
  tail -n 10 "$log" 2>/dev/null | sed 's/^/  /'
  exit 0
fi
check_out cuse-ioctl-c 'ptm capability is 0x16fff' swtpm_ioctl -c "$dev"
check cuse-second-instance-refused second_instance
# Before PTM_INIT the TPM answers every command with a failure.
check cuse-before-init sh -c '! tpm2_getrandom 8 >/dev/null 2>&1'
check cuse-ioctl-i swtpm_ioctl -i "$dev"
check cuse-startup tpm2_startup -c
check_out cuse-getrandom '^[0-9a-f]\{32\}$' tpm2_getrandom 16 --hex
check cuse-pcrextend tpm2_pcrextend 16:sha256=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
check_out cuse-pcrread '16: 0x' tpm2_pcrread sha256:16
check cuse-createprimary tpm2_createprimary -C o -G ecc -c /tmp/primary.ctx
check cuse-evictcontrol tpm2_evictcontrol -C o -c /tmp/primary.ctx 0x81000001
echo -n 'vtpm cuse nv data' > /tmp/nv.in
check cuse-nvdefine tpm2_nvdefine 0x1500016 -C o -s 17 -a 'ownerread|ownerwrite|authread|authwrite'
check cuse-nvwrite tpm2_nvwrite 0x1500016 -C o -i /tmp/nv.in
check cuse-nvread sh -c 'tpm2_nvread 0x1500016 -C o -s 17 -o /tmp/nv.out && cmp /tmp/nv.in /tmp/nv.out'
check_out cuse-ioctl-e 'tpmEstablished is [01]' swtpm_ioctl -e "$dev"
check cuse-ioctl-l2 swtpm_ioctl -l 2 "$dev"
check cuse-locality2-command tpm2_getrandom 8 -o /tmp/r8
check cuse-ioctl-l0 swtpm_ioctl -l 0 "$dev"
check cuse-ioctl-r3 swtpm_ioctl -r 3 "$dev"
check cuse-ioctl-h swtpm_ioctl -h 'measured by vtpm' "$dev"
# Hash data longer than one ioctl's 4 KiB buffer.
check cuse-ioctl-h-stdin sh -c "head -c 10000 /dev/zero | swtpm_ioctl -h - $dev"
check cuse-ioctl-C swtpm_ioctl -C "$dev"
check cuse-ioctl-v swtpm_ioctl -v "$dev"
check_out cuse-ioctl-g 'ptm configuration flags: 0x0' swtpm_ioctl -g "$dev"
check_out cuse-ioctl-b 'TPM buffersize' swtpm_ioctl -b 0 "$dev"
check_out cuse-ioctl-info '"TPMSpecification"' swtpm_ioctl --info 1 "$dev"
# State blobs: through the ioctl's 3 KiB pieces, and through read().
check cuse-save-permanent sh -c "swtpm_ioctl --save permanent /tmp/perm.blob $dev && test -s /tmp/perm.blob"
check cuse-save-volatile sh -c "swtpm_ioctl --save volatile /tmp/vol.blob $dev && test \$(wc -c < /tmp/vol.blob) -gt 3072"
check cuse-save-volatile-read sh -c "SWTPM_IOCTL_BUFFERSIZE=1000 swtpm_ioctl --save volatile /tmp/vol2.blob $dev && test -s /tmp/vol2.blob"
# (The permanent blob carries the TPM clock, so two saves differ in content, not in size.)
check cuse-save-permanent-read sh -c "SWTPM_IOCTL_BUFFERSIZE=4096 swtpm_ioctl --save permanent /tmp/perm2.blob $dev && test \$(wc -c < /tmp/perm.blob) -eq \$(wc -c < /tmp/perm2.blob)"
check cuse-ioctl-stop swtpm_ioctl --stop "$dev"
check cuse-stopped-refuses-ioctl sh -c "! swtpm_ioctl -e $dev"
check cuse-load-permanent swtpm_ioctl --load permanent /tmp/perm.blob "$dev"
check cuse-load-volatile swtpm_ioctl --load volatile /tmp/vol.blob "$dev"
check cuse-load-permanent-write sh -c "SWTPM_IOCTL_BUFFERSIZE=100 swtpm_ioctl --load permanent /tmp/perm2.blob $dev"
check cuse-load-volatile-write sh -c "SWTPM_IOCTL_BUFFERSIZE=1000 swtpm_ioctl --load volatile /tmp/vol2.blob $dev"
check cuse-init-after-load swtpm_ioctl -i "$dev"
# The loaded volatile state resumes the TPM: no TPM2_Startup needed.
check cuse-resumed-key tpm2_readpublic -c 0x81000001
check cuse-resumed-nv sh -c 'tpm2_nvread 0x1500016 -C o -s 17 -o /tmp/nv.out && cmp /tmp/nv.in /tmp/nv.out'
check cuse-ioctl-s shutdown_vtpm
# A new vtpm on the same state finds the persistent key and the NV index.
check cuse-restart start_vtpm --locality reject-locality-4
check cuse-reject-locality-4 sh -c "! swtpm_ioctl -l 4 $dev && swtpm_ioctl -l 3 $dev && swtpm_ioctl -l 0 $dev"
check cuse-restart-init swtpm_ioctl -i "$dev"
check cuse-restart-startup tpm2_startup -c
check cuse-restart-key tpm2_readpublic -c 0x81000001
check cuse-restart-nv sh -c 'tpm2_nvread 0x1500016 -C o -s 17 -o /tmp/nv.out && cmp /tmp/nv.in /tmp/nv.out'
check cuse-final-shutdown shutdown_vtpm
if grep -q 'panicked' "$log" 2>/dev/null; then fail cuse-no-panic "vtpm panicked"; else pass cuse-no-panic; fi
