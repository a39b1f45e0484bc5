//! `vtpm install --prefix DIR`: put vtpm where libvirt and swtpm_setup look
//! for swtpm: DIR/bin/vtpm (a copy of this binary) and DIR/bin/swtpm (a
//! link to it). With DIR/bin first on PATH, libvirt starts vtpm as its TPM
//! emulator and Debian's swtpm_setup manufactures its state with vtpm.

use std::path::{Path, PathBuf};

const USAGE: &str = "usage: vtpm install --prefix DIR
  installs DIR/bin/vtpm and DIR/bin/swtpm (a symbolic link to vtpm); put
  DIR/bin first on the PATH of libvirt (or swtpm_setup) to use vtpm as swtpm";

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
    let link = bin.join("swtpm");
    match std::fs::symlink_metadata(&link) {
        Ok(_) => std::fs::remove_file(&link)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink("vtpm", &link)?;
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
                "installed {0}/vtpm and {0}/swtpm -> vtpm; put {0} first on PATH to use vtpm as swtpm",
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
