//! NVRAM write latency and acknowledged-write throughput, each beside the raw
//! cost of `pwrite 4 KiB + fdatasync` on the same filesystem, in one run.
//!
//! `cargo bench -p vtpm --bench nvram` prints criterion's figures and a summary
//! with the ratios (single-writer 4 KiB latency / raw, 8 writers / 1 writer).
//! Writers use `write_sync`, the blocking write the TPM uses: committed on the
//! writer's thread while it writes alone, posted to the storage thread (and
//! group-committed) while several write at once.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nvram::{Nvram, NvramHandle, OpenOptions};

/// Images live beside the build, on a real filesystem (not tmpfs).
fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

fn open(dir: &Path, writers: usize) -> NvramHandle {
    let mut nv = Nvram::open(
        &dir.join("bench.img"),
        OpenOptions {
            create_size: Some(64 << 20),
            ..Default::default()
        },
    )
    .expect("open image");
    for w in 0..writers {
        nv.register(&format!("blob{w}"), 64 * 1024)
            .expect("register");
    }
    nv.start().expect("start")
}

/// One raw `pwrite(4 KiB) + fdatasync` on a preallocated file.
fn raw_write(f: &std::fs::File, buf: &[u8], i: u64) {
    f.write_all_at(buf, (i % 256) * 4096).expect("pwrite");
    f.sync_data().expect("fdatasync");
}

fn raw_file(dir: &Path) -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("raw.bin"))
        .expect("raw file");
    f.write_all_at(&vec![0u8; 1 << 20], 0).expect("preallocate");
    f.sync_all().expect("sync");
    f
}

fn latency(c: &mut Criterion) {
    let dir = bench_dir();
    let mut g = c.benchmark_group("nvram_write_latency");
    g.measurement_time(Duration::from_secs(4)).sample_size(40);
    let raw = raw_file(dir.path());
    let page = vec![0xA5u8; 4096];
    let mut i = 0u64;
    g.bench_function("raw_pwrite_4KiB_fdatasync", |b| {
        b.iter(|| {
            raw_write(&raw, &page, i);
            i += 1;
        })
    });
    let h = open(dir.path(), 1);
    for size in [64usize, 4096, 65536] {
        let data = vec![0x5Au8; size];
        g.bench_with_input(BenchmarkId::new("nvram_write", size), &data, |b, d| {
            b.iter(|| h.write_sync("blob0", d.clone()).expect("write"))
        });
    }
    g.finish();
}

/// Acknowledged writes per second with `writers` threads for `secs`: each
/// thread writes its own 4 KiB blob and waits for the acknowledgement before
/// writing again. Only writes acknowledged before the stop count, over the
/// time to the stop.
fn throughput(h: &NvramHandle, writers: usize, secs: f64) -> f64 {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let go = Arc::new(std::sync::Barrier::new(writers + 1));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (h, stop, go) = (h.clone(), stop.clone(), go.clone());
            std::thread::spawn(move || {
                let name = format!("blob{w}");
                let data = vec![w as u8; 4096];
                let mut n = 0u64;
                go.wait();
                loop {
                    h.write_sync(&name, data.clone()).expect("write");
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return n;
                    }
                    n += 1;
                }
            })
        })
        .collect();
    // Timed from when every writer is ready, not from spawning them.
    go.wait();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let total: u64 = threads.into_iter().map(|t| t.join().expect("writer")).sum();
    total as f64 / elapsed
}

/// Throughput rounds per writer count, and their length.
const ROUNDS: usize = 6;
const ROUND_SECS: f64 = 0.5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The figures the NVRAM promises, measured side by side and printed with ratios.
fn summary(_c: &mut Criterion) {
    let dir = bench_dir();
    let raw = raw_file(dir.path());
    let page = vec![0xA5u8; 4096];
    let h = open(dir.path(), 8);
    let rounds = 400;
    // Interleave raw and nvram writes so both see the same disk conditions.
    let (mut raw_t, mut nv_t) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let t = Instant::now();
        raw_write(&raw, &page, i);
        raw_t.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        h.write_sync("blob0", page.clone()).expect("write");
        nv_t.push(t.elapsed().as_secs_f64());
    }
    let (raw_med, nv_med) = (median(raw_t), median(nv_t));
    let raw_rate = 1.0 / raw_med;
    // One and eight writers alternate in short rounds (in both orders), so a
    // slow spell of the disk or the host weighs on both figures alike.
    let (mut ones, mut eights) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            ones.push(throughput(&h, 1, ROUND_SECS));
            eights.push(throughput(&h, 8, ROUND_SECS));
        } else {
            eights.push(throughput(&h, 8, ROUND_SECS));
            ones.push(throughput(&h, 1, ROUND_SECS));
        }
    }
    let (one, eight) = (median(ones), median(eights));
    println!(
        "\n== nvram summary (median of {rounds} interleaved writes; throughput: median of {ROUNDS} alternating rounds of {ROUND_SECS} s) =="
    );
    println!(
        "raw pwrite 4 KiB + fdatasync : {:>8.1} us  ({raw_rate:.0}/s)",
        raw_med * 1e6
    );
    println!(
        "nvram write 4 KiB (durable)  : {:>8.1} us  ratio nvram/raw = {:.2} (target <= 1.30)",
        nv_med * 1e6,
        nv_med / raw_med
    );
    println!("acknowledged writes/s, 1 writer : {one:>8.0}");
    println!(
        "acknowledged writes/s, 8 writers: {eight:>8.0}  ratio 8/1 = {:.2} (target >= 4)",
        eight / one
    );
}

criterion_group!(benches, latency, summary);
criterion_main!(benches);
