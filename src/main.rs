//! vtpm: a software TPM 2.0 with an integrated NVRAM, swtpm-compatible command line.
//!
//! `vtpm socket ...` and `vtpm mssim ...` serve a TPM (see [`cli`]);
//! `vtpm nvram ...` inspects images ([`nvram_cli`]); `vtpm setup ...`
//! manufactures a TPM as swtpm_setup does ([`setup`]). Invoked as
//! `swtpm_setup` it is `vtpm setup`; invoked as `swtpm`, vtpm. Any error is one line,
//! `vtpm: <what went wrong>`, and exit status 1.

mod capabilities;
mod cli;
mod daemon;
mod device;
mod error;
mod fds;
mod holder;
mod install;
mod instance;
mod keys;
mod logging;
mod migration_key;
mod new_file;
mod nvram_cli;
mod pidfile;
mod privileges;
mod seccomp;
mod setup;
mod signals;
mod state_dir;
mod states;
mod storage;

use cli::Action;
use error::Result;

fn execute(action: Action) -> Result<()> {
    match action {
        Action::Run(plan) => instance::run(*plan),
        Action::PrintCapabilities => {
            println!("{}", capabilities::json());
            Ok(())
        }
        Action::PrintStates(state, key) => {
            println!("{}", states::json(&state, key.as_ref())?);
            Ok(())
        }
        Action::Print(text) => {
            print!("{text}");
            Ok(())
        }
    }
}

/// The name vtpm was invoked under (the file name of argv[0]).
fn invoked_as() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

fn main() {
    // args_os: a non-UTF-8 argument is an error message, not a panic.
    let mut args = Vec::new();
    for (i, a) in std::env::args_os().enumerate().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                eprintln!(
                    "vtpm: argument {i} is not valid UTF-8: {}",
                    a.to_string_lossy()
                );
                std::process::exit(1);
            }
        }
    }
    // Installed under swtpm's names (`vtpm install`): as swtpm_setup it is
    // `vtpm setup`; as swtpm it is vtpm itself (`swtpm socket ...`).
    if invoked_as() == "swtpm_setup" {
        std::process::exit(setup::run(&args));
    }
    if args.first().map(String::as_str) == Some("setup") {
        std::process::exit(setup::run(&args[1..]));
    }
    if args.first().map(String::as_str) == Some("nvram") {
        std::process::exit(nvram_cli::run(&args[1..]));
    }
    if args.first().map(String::as_str) == Some("install") {
        std::process::exit(install::run(&args[1..]));
    }
    if args.is_empty() {
        eprint!("{}", cli::usage());
        std::process::exit(1);
    }
    let code = match cli::parse(&args).and_then(execute) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vtpm: {e}");
            1
        }
    };
    std::process::exit(code);
}
