//! NVRAM write latency and acknowledged-write throughput, each beside the raw
//! cost of `pwrite 4 KiB + fdatasync` on the same filesystem, in one run.
//!
//! `cargo bench -p vtpm --bench nvram` prints criterion's figures and a summary
//! with the ratios (single-writer 4 KiB latency / raw, 8 writers / 1 writer).

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
            b.iter(|| h.write("blob0", d.clone()).wait().expect("write"))
        });
    }
    g.finish();
}

/// Acknowledged writes per second with `writers` threads for `secs`.
fn throughput(h: &NvramHandle, writers: usize, secs: f64) -> f64 {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (h, stop) = (h.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                let data = vec![w as u8; 4096];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    h.write(&format!("blob{w}"), data.clone())
                        .wait()
                        .expect("write");
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: u64 = threads.into_iter().map(|t| t.join().expect("writer")).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

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
        h.write("blob0", page.clone()).wait().expect("write");
        nv_t.push(t.elapsed().as_secs_f64());
    }
    let (raw_med, nv_med) = (median(raw_t), median(nv_t));
    let raw_rate = 1.0 / raw_med;
    let one = throughput(&h, 1, 3.0);
    let eight = throughput(&h, 8, 3.0);
    println!("\n== nvram summary (median of {rounds} interleaved writes; throughput over 3 s) ==");
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
