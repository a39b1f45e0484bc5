//! vtpm: a software TPM 2.0 with an integrated NVRAM, swtpm-compatible command line.

mod nvram_cli;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("nvram") {
        std::process::exit(nvram_cli::run(&args[2..]));
    }
    eprintln!("vtpm: not wired yet");
    std::process::exit(1);
}
