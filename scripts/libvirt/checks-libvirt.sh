# The guest side of scripts/libvirt-test.sh (copied into the initramfs by
# scripts/guest/run.sh --build). It uses the TPM libvirt gave the guest
# (/dev/tpm0) with tpm2-tools and prints, for the host to check:
#   PASS/FAIL lines (lib.sh's contract),
#   EKCERT-BEGIN/-END: the RSA EK certificate from NV 0x01c00002, base64,
#   EKPUB-BEGIN/-END: the persistent RSA EK 0x81010001 as PEM,
#   STATE once, then TICK every 2 s: PCR 16, the persistent key's name,
#   the NV test index's contents,
# and never powers off: the host saves, restores, destroys and restarts it.
. /checks/lib.sh
export TPM2TOOLS_TCTI=device:/dev/tpm0
wait_for /dev/tpm0 20
check libvirt-guest-has-dev-tpm0 test -c /dev/tpm0

pcr() { tpm2_pcrread "sha256:$1" 2>/dev/null | sed -n 's/.*: 0x\([0-9A-Fa-f]*\).*/\1/p'; }
keyname() { tpm2_readpublic -c 0x81000010 2>/dev/null | sed -n 's/^name: *//p'; }
nvdata() { tpm2_nvread 0x1500050 -C o -s 15 2>/dev/null; }

echo "INFO pcr0=$(pcr 0)"
if [ -n "$(keyname)" ]; then
  echo "PHASE again"
else
  echo "PHASE first"
  if tpm2_nvread 0x01c00002 -o /tmp/ekcert.der >/tmp/nv.out 2>&1; then
    echo EKCERT-BEGIN; base64 /tmp/ekcert.der; echo EKCERT-END
  fi
  if tpm2_readpublic -c 0x81010001 -f pem -o /tmp/ek.pem >/tmp/ek.out 2>&1; then
    echo EKPUB-BEGIN; cat /tmp/ek.pem; echo EKPUB-END
  fi
  check libvirt-guest-creates-persistent-key sh -c \
    'tpm2_createprimary -C o -G ecc256 -c /tmp/p.ctx && tpm2_evictcontrol -C o -c /tmp/p.ctx 0x81000010'
  check libvirt-guest-writes-nv sh -c \
    'tpm2_nvdefine 0x1500050 -C o -s 15 -a "ownerread|ownerwrite" && printf libvirt-nv-1234 > /tmp/nv && tpm2_nvwrite 0x1500050 -C o -i /tmp/nv'
  check libvirt-guest-extends-pcr16 tpm2_pcrextend \
    16:sha256=4444444444444444444444444444444444444444444444444444444444444444
fi
echo "STATE pcr16=$(pcr 16) key=$(keyname) nv=$(nvdata)"
while true; do
  sleep 2
  echo "TICK pcr16=$(pcr 16) key=$(keyname) nv=$(nvdata)"
done
