#!/usr/bin/env bash
# vtpm under libvirt, as a user of virt-manager would have it: libvirt
# provisions the TPM with Debian's swtpm_setup (which runs vtpm), starts vtpm
# as `swtpm socket` for a domain with
#   <tpm model='tpm-tis'><backend type='emulator' version='2.0'/></tpm>
# (and once more with <encryption secret='...'/> on a libvirt secret), and a
# Debian kernel with a busybox initramfs (scripts/guest/run.sh --build) uses
# the TPM under QEMU TCG. Prints PASS/FAIL/SKIP lines.
#
#   scripts/libvirt-test.sh VTPM_BINARY
#
# libvirtd runs in session mode (qemu:///session) in a private directory:
# HOME, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, ... all point into it, so nothing
# of the host's libvirt is touched; as root it runs as user nobody (session
# mode needs an unprivileged user). `vtpm install --prefix` provides vtpm;
# only its `swtpm` is put on libvirtd's PATH, so Debian's swtpm_setup and
# swtpm_ioctl are the ones libvirt runs. virtlogd is started by libvirtd.
#
# Exit status: 0 all checks passed, 1 a check failed, 77 libvirt cannot run here.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vtpm="$(readlink -f "${1:?usage: libvirt-test.sh VTPM_BINARY}")"
timeout_s="${LIBVIRT_TEST_TIMEOUT:-600}"

skip() { echo "SKIP libvirt: $*"; exit 77; }
for t in /usr/sbin/libvirtd /usr/bin/virsh /usr/bin/qemu-system-x86_64 /usr/bin/swtpm_setup \
  /usr/bin/swtpm_ioctl /usr/bin/swtpm_localca /usr/bin/openssl; do
  [ -x "$t" ] || skip "$t is not installed (libvirt-daemon-system, libvirt-clients, qemu-system-x86, swtpm-tools, openssl)"
done
[ -x "$vtpm" ] || { echo "libvirt-test.sh: $vtpm is not an executable"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-libvirt.XXXXXX")
chmod 755 "$W"
mkdir -p "$W"/{home,run,config,cache,data,bin,guest,out}
chmod 700 "$W/run"
runner=()
if [ "$(id -u)" -eq 0 ]; then
  command -v setpriv >/dev/null || skip "setpriv (util-linux) is needed to run libvirtd as nobody"
  runner=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
session_env=(HOME="$W/home" XDG_RUNTIME_DIR="$W/run" XDG_CONFIG_HOME="$W/config"
  XDG_CACHE_HOME="$W/cache" XDG_DATA_HOME="$W/data"
  PATH="$W/bin:/usr/sbin:/usr/bin:/sbin:/bin" LIBVIRT_DEFAULT_URI=qemu:///session)
# as CMD...: run CMD as the libvirt session user in the private environment.
as() { env -i "${session_env[@]}" "${runner[@]}" "$@"; }

npass=0 nfail=0
pass() { echo "PASS $1"; npass=$((npass + 1)); }
fail() { echo "FAIL $1: $2"; nfail=$((nfail + 1)); }
# ok NAME CMD...: PASS when CMD succeeds, else FAIL with its output.
ok() {
  local name="$1"; shift
  if "$@" >"$W/out/ok.log" 2>&1; then pass "$name"; else
    fail "$name" "$*"; tail -n 12 "$W/out/ok.log" | sed 's/^/  /'; fi
}

libvirtd_pid=""
cleanup() {
  for d in vtpm-lv-plain vtpm-lv-encrypted; do
    as virsh destroy "$d" >/dev/null 2>&1
    as virsh undefine "$d" --managed-save --tpm >/dev/null 2>&1
  done
  [ -n "$libvirtd_pid" ] && kill "$libvirtd_pid" 2>/dev/null
  local vl
  vl=$(cat "$W/run/libvirt/virtlogd.pid" 2>/dev/null)
  [ -n "$vl" ] && kill "$vl" 2>/dev/null
  if [ -n "$libvirtd_pid" ]; then
    for _ in $(seq 50); do kill -0 "$libvirtd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$libvirtd_pid" 2>/dev/null
    wait "$libvirtd_pid" 2>/dev/null
  fi
  [ -n "${LIBVIRT_TEST_KEEP:-}" ] && { echo "libvirt: kept $W"; return; }
  rm -rf "$W"
}
trap cleanup EXIT

# --- vtpm as swtpm, the guest, the session user's swtpm_setup config --------
"$vtpm" install --prefix "$W/prefix" >/dev/null || { echo "FAIL libvirt-install: vtpm install failed"; exit 1; }
# Before libvirtd starts: it looks swtpm up once and keeps the path.
ln -s "$W/prefix/bin/swtpm" "$W/bin/swtpm"
"$here/guest/run.sh" --build "$W/guest" "$vtpm" "$here/libvirt/checks-libvirt.sh" >"$W/out/guest-build.log" 2>&1
rc=$?
[ $rc -eq 77 ] && skip "the guest cannot be built: $(tail -1 "$W/out/guest-build.log")"
[ $rc -eq 0 ] || { echo "FAIL libvirt-guest-build"; tail "$W/out/guest-build.log"; exit 1; }
[ ${#runner[@]} -gt 0 ] && chown -R nobody:nogroup "$W"
as swtpm_setup --create-config-files skip-if-exist >"$W/out/config.log" 2>&1 ||
  skip "swtpm_setup --create-config-files failed: $(tail -1 "$W/out/config.log")"

# --- libvirtd ------------------------------------------------------------------
# Not through `as`: $! must be libvirtd itself (env and setpriv exec it).
env -i "${session_env[@]}" "${runner[@]}" /usr/sbin/libvirtd >"$W/out/libvirtd.log" 2>&1 &
libvirtd_pid=$!
for _ in $(seq 100); do
  [ -S "$W/run/libvirt/libvirt-sock" ] && as virsh version >/dev/null 2>&1 && break
  sleep 0.2
done
as virsh version >/dev/null 2>&1 || skip "libvirtd did not start: $(grep -m1 -i error "$W/out/libvirtd.log")"
as virsh domcapabilities --virttype qemu 2>/dev/null | grep -q "<value>emulator</value>" ||
  skip "libvirt offers no TPM emulator backend here"
echo "libvirt: $(as virsh version 2>/dev/null | sed -n 's/^Using library: //p'), session mode as $(as id -un), state in $W"

# console FILE: the guest's serial output so far, without CRs.
console() { tr -d '\r' < "$1" 2>/dev/null; }
# wait_line FILE SKIP PATTERN: wait until a line matching PATTERN appears after the first SKIP lines.
wait_line() {
  local end=$((SECONDS + timeout_s))
  while [ $SECONDS -lt $end ]; do
    console "$1" | tail -n +"$(($2 + 1))" | grep -q -- "$3" && return 0
    sleep 1
  done
  return 1
}
lines() { console "$1" | wc -l; }
# field LINE KEY: the value of KEY=... in a STATE/TICK line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

run_domain() {
  local v="$1" enc_xml="" secret=""
  local dom="vtpm-lv-$v" con="$W/out/console-$v.log"
  if [ "$v" = encrypted ]; then
    secret=$(cat /proc/sys/kernel/random/uuid)
    cat >"$W/out/secret.xml" <<EOF
<secret ephemeral='no' private='yes'>
  <uuid>$secret</uuid>
  <usage type='vtpm'><name>vtpm-libvirt-test</name></usage>
</secret>
EOF
    [ ${#runner[@]} -gt 0 ] && chown nobody:nogroup "$W/out/secret.xml"
    if as virsh secret-define "$W/out/secret.xml" >"$W/out/secret.log" 2>&1 &&
      as virsh secret-set-value "$secret" "$(printf 'vtpm libvirt test passphrase' | base64)" >>"$W/out/secret.log" 2>&1; then
      pass "libvirt-$v-secret"
    else
      fail "libvirt-$v-secret" "$(tail -2 "$W/out/secret.log")"
    fi
    enc_xml="<encryption secret='$secret'/>"
  fi
  cat >"$W/out/$dom.xml" <<EOF
<domain type='qemu'>
  <name>$dom</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$W/guest/vmlinuz</kernel>
    <initrd>$W/guest/initrd.gz</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet loglevel=3</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='$con' append='on'/><target port='0'/></serial>
    <tpm model='tpm-tis'><backend type='emulator' version='2.0'>$enc_xml</backend></tpm>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  [ ${#runner[@]} -gt 0 ] && chown -R nobody:nogroup "$W/out"
  if ! as virsh define "$W/out/$dom.xml" >"$W/out/define.log" 2>&1 ||
    ! as virsh start "$dom" >"$W/out/start.log" 2>&1; then
    fail "libvirt-$v-start" "$(cat "$W/out/define.log" "$W/out/start.log" | tail -3)"
    tail -n 15 "$W/cache/libvirt/qemu/log/$dom-swtpm.log" 2>/dev/null | sed 's/^/  /'
    grep -- "swtpm socket" "$W/cache/libvirt/qemu/log/$dom.log" 2>/dev/null | tail -1 | sed 's/^/  /'
    return
  fi
  pass "libvirt-$v-start"
  local swlog="$W/cache/libvirt/qemu/log/$dom-swtpm.log" qlog="$W/cache/libvirt/qemu/log/$dom.log"
  if ! wait_line "$con" 0 '^STATE '; then
    fail "libvirt-$v-boot" "no STATE line from the guest"; console "$con" | tail -20 | sed 's/^/  /'
    return
  fi
  pass "libvirt-$v-boot"
  console "$con" | grep -E '^(PASS|FAIL) ' | sed "s/^\(PASS\|FAIL\) /\1 libvirt-$v-/" | while read -r l; do echo "$l"; done
  npass=$((npass + $(console "$con" | grep -c '^PASS '))); nfail=$((nfail + $(console "$con" | grep -c '^FAIL ')))

  # vtpm is the emulator libvirt started, and provisioning ran through it.
  local cmdline
  cmdline=$(grep -m1 -- "swtpm socket" "$qlog")
  echo "  libvirt ran: ${cmdline:0:400}"
  ok "libvirt-$v-runs-vtpm-as-swtpm" grep -q -- "^$W/bin/swtpm socket" "$qlog"
  ok "libvirt-$v-vtpm-serves" grep -q "vtpm\[[0-9]*\]: INFO serving a TPM 2.0" "$swlog"
  ok "libvirt-$v-provisioned-by-swtpm_setup-with-vtpm" sh -c \
    "grep -q 'Successfully authored TPM state' '$swlog' && grep -q 'Successfully created NVRAM area 0x1c00002' '$swlog'"
  ok "libvirt-$v-seccomp-filter" grep -q "seccomp filter installed" "$swlog"
  if [ "$v" = encrypted ]; then
    ok "libvirt-$v-key-and-migration-key-passed" sh -c \
      "grep -q -- '--key pwdfd=' '$qlog' && grep -q -- '--migration-key pwdfd=' '$qlog'"
  fi

  # The EK certificate in NV, verified against swtpm_localca's CA; its key is the EK's.
  console "$con" | sed -n '/^EKCERT-BEGIN/,/^EKCERT-END/p' | sed '1d;$d' | base64 -d >"$W/out/ek-$v.der" 2>/dev/null
  console "$con" | sed -n '/^EKPUB-BEGIN/,/^EKPUB-END/p' | sed '1d;$d' >"$W/out/ekpub-$v.pem"
  local ca="$W/config/var/lib/swtpm-localca"
  if [ -s "$W/out/ek-$v.der" ]; then
    openssl x509 -inform DER -in "$W/out/ek-$v.der" -out "$W/out/ek-$v.pem" 2>/dev/null
    ok "libvirt-$v-ek-cert-verifies-against-local-ca" openssl verify \
      -CAfile "$ca/swtpm-localca-rootca-cert.pem" -untrusted "$ca/issuercert.pem" "$W/out/ek-$v.pem"
    if cmp -s <(openssl x509 -in "$W/out/ek-$v.pem" -pubkey -noout | openssl pkey -pubin -outform DER 2>/dev/null) \
      <(openssl pkey -pubin -in "$W/out/ekpub-$v.pem" -outform DER 2>/dev/null) &&
      [ -s "$W/out/ekpub-$v.pem" ]; then
      pass "libvirt-$v-ek-cert-key-is-the-ek"
    else
      fail "libvirt-$v-ek-cert-key-is-the-ek" "certificate key differs from persistent EK 0x81010001"
    fi
  else
    fail "libvirt-$v-ek-cert-in-nv" "the guest could not read NV 0x01c00002"
  fi
  local pcr0
  pcr0=$(console "$con" | sed -n 's/^INFO pcr0=//p' | head -1)
  if [ -n "$pcr0" ] && [ "${pcr0//0/}" != "" ]; then
    pass "libvirt-$v-firmware-measured-pcr0"
  else
    fail "libvirt-$v-firmware-measured-pcr0" "PCR 0 is '${pcr0}'"
  fi

  # managedsave + start: the guest goes on with the same PCRs and key.
  local state
  state=$(console "$con" | grep '^STATE ' | tail -1)
  local pcr16 key nv
  pcr16=$(field "$state" pcr16); key=$(field "$state" key); nv=$(field "$state" nv)
  echo "  guest state: pcr16=$pcr16 key=$key nv=$nv"
  if as virsh managedsave "$dom" >"$W/out/save.log" 2>&1; then
    pass "libvirt-$v-managedsave"
    local mark
    mark=$(lines "$con")
    if as virsh start "$dom" >"$W/out/restore.log" 2>&1 && wait_line "$con" "$mark" '^TICK '; then
      local tick
      tick=$(console "$con" | tail -n +"$((mark + 1))" | grep '^TICK ' | head -1)
      if [ "$(field "$tick" pcr16)" = "$pcr16" ] && [ "$(field "$tick" key)" = "$key" ] && [ -n "$key" ]; then
        pass "libvirt-$v-managedsave-restore-keeps-pcrs-and-key"
      else
        fail "libvirt-$v-managedsave-restore-keeps-pcrs-and-key" "after restore: $tick"
      fi
    else
      fail "libvirt-$v-managedsave-restore-keeps-pcrs-and-key" "$(tail -3 "$W/out/restore.log")"
      tail -15 "$swlog" | sed 's/^/  /'
    fi
  else
    fail "libvirt-$v-managedsave" "$(tail -3 "$W/out/save.log")"
  fi

  # destroy + start: a fresh boot finds the NV data and the persistent key.
  as virsh destroy "$dom" >/dev/null 2>&1
  mark=$(lines "$con")
  if as virsh start "$dom" >"$W/out/start2.log" 2>&1 && wait_line "$con" "$mark" '^STATE '; then
    local again
    again=$(console "$con" | tail -n +"$((mark + 1))" | grep '^STATE ' | head -1)
    if console "$con" | tail -n +"$((mark + 1))" | grep -q '^PHASE again' &&
      [ "$(field "$again" nv)" = libvirt-nv-1234 ] && [ "$(field "$again" key)" = "$key" ]; then
      pass "libvirt-$v-destroy-start-keeps-nv-and-key"
    else
      fail "libvirt-$v-destroy-start-keeps-nv-and-key" "after restart: $again"
    fi
  else
    fail "libvirt-$v-destroy-start-keeps-nv-and-key" "$(tail -3 "$W/out/start2.log")"
  fi
  as virsh destroy "$dom" >/dev/null 2>&1

  # The state directory: with encryption no plaintext NV data or certificate in it.
  local sdir
  sdir=$(dirname "$(grep -o -- '--tpmstate dir=[^ ,]*' "$qlog" | head -1 | sed 's/--tpmstate dir=//')/x")
  local plain_hits=0 f
  for f in "$sdir"/* "$sdir"/.[!.]*; do
    [ -f "$f" ] || continue
    grep -q -a libvirt-nv-1234 "$f" && plain_hits=$((plain_hits + 1))
    if [ -s "$W/out/ek-$v.der" ] && grep -q -a -F "$(head -c 200 "$W/out/ek-$v.der" | tail -c 24 | od -An -tx1 | tr -d ' \n')" <(od -An -tx1 "$f" | tr -d ' \n'); then
      plain_hits=$((plain_hits + 1))
    fi
  done
  echo "  state directory $sdir: $(ls -a "$sdir" | tr '\n' ' ')"
  if [ "$v" = encrypted ]; then
    if [ "$plain_hits" -eq 0 ]; then pass "libvirt-$v-no-plaintext-in-state-dir"; else
      fail "libvirt-$v-no-plaintext-in-state-dir" "$plain_hits plaintext finds"; fi
  else
    echo "  (unencrypted state: $plain_hits plaintext finds of the NV data / EK certificate, as expected)"
  fi
}

for v in ${LIBVIRT_TEST_VARIANTS:-plain encrypted}; do
  run_domain "$v"
done

echo "libvirt: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
