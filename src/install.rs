//! `vtpm install --prefix DIR`: put vtpm where libvirt looks for swtpm and
//! swtpm_setup: DIR/bin/vtpm (a copy of this binary) and the links
//! DIR/bin/swtpm and DIR/bin/swtpm_setup to it (vtpm dispatches on the name
//! it is invoked under). With DIR/bin first on PATH, libvirt starts vtpm as
//! its TPM emulator and manufactures its state with `vtpm setup`.
//!
//! No swtpm_ioctl is installed: vtpm has no client for swtpm's control
//! channel. libvirt also looks swtpm_ioctl up on its PATH; Debian's
//! (package swtpm-tools) works against vtpm, which serves that channel.

use std::path::{Path, PathBuf};

const USAGE: &str = "usage: vtpm install --prefix DIR
  installs DIR/bin/vtpm and DIR/bin/swtpm and DIR/bin/swtpm_setup (symbolic
  links to vtpm); put DIR/bin first on the PATH of libvirt to use vtpm as
  swtpm and swtpm_setup (swtpm_ioctl comes from swtpm-tools)";

/// The names vtpm is installed under besides its own.
const LINKS: &[&str] = &["swtpm", "swtpm_setup"];

fn parse(args: &[String]) -> Result<PathBuf, String> {
    match args {
        [flag, dir] if flag == "--prefix" => Ok(PathBuf::from(dir)),
        [flag] if flag == "-h" || flag == "--help" => Err(String::new()),
        _ => Err("expected --prefix DIR".into()),
    }
}

fn install(prefix: &Path) -> std::io::Result<PathBuf> {
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin)?;
    let me = std::env::current_exe()?;
    let target = bin.join("vtpm");
    // Copied under a temporary name and renamed: a running vtpm keeps its file.
    let staged = bin.join(".vtpm.new");
    std::fs::copy(&me, &staged)?;
    std::fs::rename(&staged, &target)?;
    for name in LINKS {
        // Made under a temporary name and renamed: the name never vanishes.
        let staged = bin.join(format!(".{name}.new"));
        match std::fs::symlink_metadata(&staged) {
            Ok(_) => std::fs::remove_file(&staged)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink("vtpm", &staged)?;
        std::fs::rename(&staged, bin.join(name))?;
    }
    Ok(bin)
}

/// Run `vtpm install ARGS`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let prefix = match parse(args) {
        Ok(p) => p,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("vtpm install: {e}\n{USAGE}");
            return 2;
        }
    };
    match install(&prefix) {
        Ok(bin) => {
            println!(
                "installed {0}/vtpm, {0}/swtpm -> vtpm and {0}/swtpm_setup -> vtpm; put {0} first on PATH to use vtpm as swtpm and swtpm_setup",
                bin.display()
            );
            0
        }
        Err(e) => {
            eprintln!("vtpm install: {}: {e}", prefix.display());
            1
        }
    }
}
