//! `--runas USER`: give up root once everything that needs it is open, as
//! swtpm does: the user's uid and primary group, no supplementary groups.

use nix::unistd::{getgid, getuid, setgid, setgroups, setuid, Gid, Uid, User};

use crate::error::{Error, Result};

/// Switch this process to `user` (a name, or a numeric uid taken as is with
/// the group of that uid's passwd entry, or the same number when it has none).
/// Already being that user is no change; anything that cannot be done is an
/// error naming the user.
pub fn drop_to(user: &str) -> Result<()> {
    let fail = |why: String| Error::Usage(format!("--runas {user}: {why}"));
    let entry = match user.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n))
            .map_err(|e| fail(e.to_string()))?
            .map(|u| (u.uid, u.gid))
            .unwrap_or((Uid::from_raw(n), Gid::from_raw(n))),
        Err(_) => User::from_name(user)
            .map_err(|e| fail(e.to_string()))?
            .map(|u| (u.uid, u.gid))
            .ok_or_else(|| fail("no such user".into()))?,
    };
    let (uid, gid) = entry;
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
