//! vtpm: a software TPM 2.0 with an integrated NVRAM, swtpm-compatible command line.

fn main() {
    eprintln!("vtpm: not wired yet");
    std::process::exit(1);
}
