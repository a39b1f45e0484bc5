# The guest itself: the binaries run and the front ends' modules load.
. /checks/lib.sh
check base-vtpm-runs vtpm --version
check base-tpm2-tools-run tpm2_getrandom --version
check base-swtpm-ioctl-runs sh -c 'swtpm_ioctl --help >/dev/null 2>&1; [ $? -ne 127 ]'
check base-modprobe-cuse sh -c 'modprobe cuse && test -c /dev/cuse'
check base-modprobe-vtpm-proxy sh -c 'modprobe tpm_vtpm_proxy && test -c /dev/vtpmx'
