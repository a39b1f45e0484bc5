//! `vtpm nvram info|list|dump IMAGE ...`: inspect an NVRAM image.

/// Run the nvram subcommand with the arguments after `nvram`; returns the exit code.
pub fn run(_args: &[String]) -> i32 {
    eprintln!("vtpm nvram: not implemented yet");
    2
}
