//! Files vtpm creates get the state's mode bits (`--tpmstate ...,mode=`,
//! default 0640) exactly, whatever the umask: the image, its lock file, the
//! pid file and the log file. A file that already exists keeps its mode.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Open `path` with `opts` (which must ask for writing), creating it with
/// exactly `mode` if it does not exist.
pub fn open(opts: &OpenOptions, path: &Path, mode: u32) -> io::Result<File> {
    let mut create = opts.clone();
    create.create_new(true);
    match create.open(path) {
        Ok(f) => {
            // After creation: the umask may have taken bits away.
            f.set_permissions(Permissions::from_mode(mode))?;
            Ok(f)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mut existing = opts.clone();
            existing.create(false);
            existing.open(path)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn new_files_get_the_mode_existing_ones_keep_theirs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut o = OpenOptions::new();
        o.write(true).create(true);
        let mut f = open(&o, &p, 0o604).unwrap();
        f.write_all(b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&p), 0o604);
        std::fs::set_permissions(&p, Permissions::from_mode(0o600)).unwrap();
        open(&o, &p, 0o644).unwrap();
        assert_eq!(mode(&p), 0o600);
    }
}
