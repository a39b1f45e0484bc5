//! `--seccomp action=kill|log|none`: once vtpm has opened its sockets,
//! state and files and started its threads, it installs a syscall filter on
//! every thread that allows only what serving needs; any other syscall ends
//! the process (`kill`, swtpm's default) or is allowed and logged by the
//! kernel (`log`). The filter is built with the rust-vmm `seccompiler` crate.
//!
//! The allow-list was taken from `strace -f` of vtpm serving the test
//! suite's tpm2-tools flows, NV writes, state blob transfers
//! (swtpm_ioctl --save/--load), migration hand-over, signals and shutdown,
//! plus what the Rust standard library and glibc call on the same paths
//! (futex, memory mapping, clock reads); see [`allowed`]. Since kill is the
//! default, every integration test, the guest tests' CUSE and vTPM proxy
//! flows and scripts/libvirt-test.sh run under it. Everything that starts
//! programs, changes credentials, mounts, traces, loads modules or opens
//! new network connections (other than an NBD state's) is absent.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction as Action, SeccompFilter, TargetArch};

use crate::error::{Error, Result};

/// What a syscall outside the allow-list does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompAction {
    /// No filter.
    None,
    /// Allowed, and logged by the kernel (audit log / dmesg).
    Log,
    /// The process is killed (SIGSYS).
    Kill,
}

/// The syscalls vtpm makes while serving, on this architecture. `network`:
/// the state is on an NBD export, which vtpm reconnects to (and may resolve
/// the host name of) while serving.
///
/// Taken from `strace -f` of vtpm after the filter went in, on x86_64, over:
/// tpm2-tools sessions (keys, NV define/write/read, PCRs, contexts) on TCP;
/// swtpm_ioctl (init, stop, state blobs out and in, config, info, hash,
/// locality, shutdown); QEMU over a UNIX control socket (CMD_SET_DATAFD);
/// `--migration incoming,release-lock-outgoing` (state locked, created and
/// opened after start, handed over and taken back); mssim mode; `--key`,
/// `--migration-key`; SIGTERM. The aarch64 forms of the same calls (it has
/// only `*at`, `ppoll`, `epoll_pwait`) and a few calls std and glibc fall
/// back to are added, each noted.
fn allowed(network: bool) -> Vec<i64> {
    let mut v: Vec<i64> = vec![
        // Sockets: accepting clients, reading and answering them, passing
        // the data channel descriptor (recvmsg), closing them.
        libc::SYS_accept4,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_sendto,
        libc::SYS_shutdown,
        libc::SYS_getsockname,
        libc::SYS_getsockopt,
        libc::SYS_setsockopt,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        libc::SYS_ppoll,
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_close,
        libc::SYS_fcntl,
        // The NVRAM image, its lock, the pid and log files; with
        // `--migration incoming` the state directory and image are created
        // and opened only now.
        libc::SYS_openat,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_lseek,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_ftruncate,
        libc::SYS_flock,
        libc::SYS_statx,
        // statx's fallbacks in std and glibc.
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_mkdirat,
        libc::SYS_renameat2,
        libc::SYS_unlinkat,
        // Threads (connection handlers), their start and end, and memory.
        libc::SYS_clone3,
        // clone3's fallback.
        libc::SYS_clone,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_sigaltstack,
        libc::SYS_prctl,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_yield,
        libc::SYS_futex,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        // malloc's other ways of getting and growing memory.
        libc::SYS_brk,
        libc::SYS_mremap,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_getrandom,
        // Signals (SIGTERM), waits, clocks without the vDSO, and the end.
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_restart_syscall,
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ];
    // The x86_64 names of what aarch64 has only in its `*at`/`p*` forms.
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_poll,
        libc::SYS_epoll_wait,
        libc::SYS_open,
        libc::SYS_stat,
        libc::SYS_chmod,
        libc::SYS_mkdir,
        libc::SYS_rename,
        libc::SYS_renameat,
        libc::SYS_unlink,
    ]);
    if network {
        v.extend([libc::SYS_socket, libc::SYS_connect, libc::SYS_sendmmsg]);
    }
    v
}

fn target_arch() -> Result<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else {
        Err(Error::Process(
            "--seccomp: no syscall filter for this architecture; use --seccomp action=none".into(),
        ))
    }
}

/// Compile the filter for `action` (None for `action=none`); `network` as for [`allowed`].
pub fn program(action: SeccompAction, network: bool) -> Result<Option<BpfProgram>> {
    let mismatch = match action {
        SeccompAction::None => return Ok(None),
        SeccompAction::Log => Action::Log,
        SeccompAction::Kill => Action::KillProcess,
    };
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = allowed(network)
        .into_iter()
        .map(|n| (n, Vec::new()))
        .collect();
    let fail = |e: String| Error::Process(format!("--seccomp: cannot build the filter: {e}"));
    let filter = SeccompFilter::new(rules, mismatch, Action::Allow, target_arch()?)
        .map_err(|e| fail(e.to_string()))?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| fail(e.to_string()))?;
    Ok(Some(prog))
}

/// Install `prog`, the filter [`program`] compiled for `action`, on every
/// thread of the process; `network` as for [`allowed`].
pub fn install(prog: Option<BpfProgram>, action: SeccompAction, network: bool) -> Result<()> {
    let Some(prog) = prog else {
        return Ok(());
    };
    seccompiler::apply_filter_all_threads(&prog)
        .map_err(|e| Error::Process(format!("--seccomp: cannot install the filter: {e}")))?;
    #[cfg(feature = "seccomp-test-hook")]
    test_hook::arm();
    log::info!(
        "seccomp filter installed ({} syscalls allowed; others {})",
        allowed(network).len(),
        match action {
            SeccompAction::Log => "are logged",
            _ => "kill vtpm",
        }
    );
    Ok(())
}

/// Only in builds with the `seccomp-test-hook` feature (tests/seccomp.rs):
/// a way for a test to make a serving vtpm call a syscall the filter
/// forbids. When `VTPM_TEST_SECCOMP_TRIGGER` names a file, a thread waits
/// for that file to appear and then executes `/bin/true` (execve), which is
/// what an attacker who took over vtpm would try.
#[cfg(feature = "seccomp-test-hook")]
mod test_hook {
    pub fn arm() {
        let Some(trigger) = std::env::var_os("VTPM_TEST_SECCOMP_TRIGGER") else {
            return;
        };
        let trigger = std::path::PathBuf::from(trigger);
        std::thread::spawn(move || {
            while !trigger.exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            log::warn!("seccomp test hook: calling execve(/bin/true)");
            let e = nix::unistd::execv(c"/bin/true", &[c"true"]);
            log::error!("seccomp test hook: execve returned: {e:?}");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile() {
        assert!(program(SeccompAction::None, false).unwrap().is_none());
        for a in [SeccompAction::Log, SeccompAction::Kill] {
            for net in [false, true] {
                assert!(!program(a, net).unwrap().unwrap().is_empty());
            }
        }
        assert!(!allowed(false).contains(&libc::SYS_connect));
        assert!(!allowed(false).contains(&libc::SYS_execve));
    }
}
