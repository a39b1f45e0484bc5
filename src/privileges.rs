//! `--runas USER` and `--chroot DIR`: give up root once everything that
//! needs it is open, as swtpm does: the user's uid and primary group, no
//! supplementary groups. The user is looked up before any chroot, so the
//! chroot needs no passwd file.

use std::path::Path;

use nix::unistd::{chdir, chroot, getgid, getuid, setgid, setgroups, setuid, Gid, Uid, User};

use crate::error::{Error, Result};

/// A `--runas` user, looked up.
#[derive(Debug, Clone)]
pub struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
}

/// Look up `user`: a name, or a numeric uid taken as is with the group of
/// that uid's passwd entry (or the same number when it has none).
pub fn resolve(user: &str) -> Result<RunAs> {
    let fail = |why: String| Error::Usage(format!("--runas {user}: {why}"));
    let (uid, gid) = match user.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n))
            .map_err(|e| fail(e.to_string()))?
            .map(|u| (u.uid, u.gid))
            .unwrap_or((Uid::from_raw(n), Gid::from_raw(n))),
        Err(_) => User::from_name(user)
            .map_err(|e| fail(e.to_string()))?
            .map(|u| (u.uid, u.gid))
            .ok_or_else(|| fail("no such user".into()))?,
    };
    Ok(RunAs {
        name: user.to_string(),
        uid,
        gid,
    })
}

impl RunAs {
    /// Switch this process to the user. Already being that user is no
    /// change; anything that cannot be done is an error naming the user.
    pub fn apply(&self) -> Result<()> {
        let user = &self.name;
        let fail = |why: String| Error::Usage(format!("--runas {user}: {why}"));
        let (uid, gid) = (self.uid, self.gid);
        if getuid() == uid && getgid() == gid {
            return Ok(());
        }
        // Groups first: once the uid is dropped they can no longer be changed.
        setgroups(&[]).map_err(|e| fail(format!("cannot drop supplementary groups: {e}")))?;
        setgid(gid).map_err(|e| fail(format!("cannot switch to group {gid}: {e}")))?;
        setuid(uid).map_err(|e| fail(format!("cannot switch to user {uid}: {e}")))?;
        // Never carry on as root by mistake.
        if setuid(Uid::from_raw(0)).is_ok() && !uid.is_root() {
            return Err(fail("root could be regained after switching".into()));
        }
        log::info!("running as user {user} (uid {uid}, gid {gid})");
        Ok(())
    }
}

/// `--chroot DIR`: make DIR the root directory and move into it.
pub fn enter_chroot(dir: &Path) -> Result<()> {
    let fail = |e: nix::Error| {
        Error::Usage(format!(
            "--chroot {}: {e}{}",
            dir.display(),
            if e == nix::Error::EPERM {
                " (changing the root directory needs root)"
            } else {
                ""
            }
        ))
    };
    chroot(dir).map_err(fail)?;
    chdir("/").map_err(fail)?;
    log::info!("root directory is now {}", dir.display());
    Ok(())
}
