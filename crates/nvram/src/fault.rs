//! A backend that fails on command and simulates power loss, for the crash
//! tests: every write and every flush is one numbered operation; a write or
//! flush can be made to fail, and at the crash operation the power goes out.
//! After a crash, [`FaultBackend::after_power_loss`] gives the image a reboot
//! would find: everything flushed, plus (at the tester's choice) some prefix of
//! the unflushed writes with the last one torn at a 512-byte boundary, or any
//! subset of the unflushed sectors (a disk that writes back out of order).

use std::path::PathBuf;

use crate::backend::Backend;

/// Sector size at which a write may be torn.
pub const SECTOR: usize = 512;

/// What to break, by operation number (0-based; writes and flushes count).
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultPlan {
    /// This operation fails (a write writes nothing; a flush flushes nothing).
    pub fail_at: Option<u64>,
    /// At this operation the power goes out: it and everything after fail.
    pub crash_at: Option<u64>,
}

/// The fault-injecting backend. Clones share one simulated disk, so a test can
/// keep a clone while the store owns the other.
#[derive(Clone)]
pub struct FaultBackend {
    disk: std::sync::Arc<parking_lot::Mutex<Disk>>,
}

struct Disk {
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    ops: u64,
    plan: FaultPlan,
    crashed: bool,
    in_flight: Option<(u64, Vec<u8>)>,
    /// Every operation in order: the offset of a write, None for a flush.
    log: Vec<Option<u64>>,
}

fn io_err(what: &str) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

impl FaultBackend {
    /// A backend over a copy of `image`.
    pub fn new(image: Vec<u8>, plan: FaultPlan) -> Self {
        let disk = Disk {
            durable: image,
            pending: Vec::new(),
            ops: 0,
            plan,
            crashed: false,
            in_flight: None,
            log: Vec::new(),
        };
        FaultBackend {
            disk: std::sync::Arc::new(parking_lot::Mutex::new(disk)),
        }
    }

    /// Operations performed (or attempted) so far.
    pub fn ops(&self) -> u64 {
        self.disk.lock().ops
    }

    /// Every operation so far, in order: the offset of a write, None for a flush.
    pub fn op_log(&self) -> Vec<Option<u64>> {
        self.disk.lock().log.clone()
    }

    /// Whether the power went out.
    pub fn crashed(&self) -> bool {
        self.disk.lock().crashed
    }

    /// See [`Disk::after_power_loss`].
    pub fn after_power_loss(&self, keep: usize, torn_sectors: usize) -> Vec<u8> {
        self.disk.lock().after_power_loss(keep, torn_sectors)
    }

    /// See [`Disk::after_power_loss_scrambled`].
    pub fn after_power_loss_scrambled(&self, seed: u64) -> Vec<u8> {
        self.disk.lock().after_power_loss_scrambled(seed)
    }

    /// Number of writes not flushed (the one in flight at a crash included).
    pub fn unflushed(&self) -> usize {
        self.disk.lock().unflushed()
    }

    /// The image as the running system sees it.
    pub fn image(&self) -> Vec<u8> {
        self.disk.lock().current()
    }
}

impl Disk {
    fn current(&self) -> Vec<u8> {
        let mut img = self.durable.clone();
        for (off, d) in &self.pending {
            put(&mut img, *off, d);
        }
        img
    }

    /// The image after the power loss: flushed data, plus the first `keep`
    /// unflushed writes (the write in flight at the crash counts as the last
    /// of them), the last kept one torn after `torn_sectors` sectors.
    fn after_power_loss(&self, keep: usize, torn_sectors: usize) -> Vec<u8> {
        let mut img = self.durable.clone();
        let mut all: Vec<&(u64, Vec<u8>)> = self.pending.iter().collect();
        if let Some(w) = &self.in_flight {
            all.push(w);
        }
        let keep = keep.min(all.len());
        for (i, (off, d)) in all.iter().take(keep).enumerate() {
            if i + 1 == keep {
                // Sectors are written whole: the torn write keeps a prefix of sectors.
                let start = *off as usize;
                let first_boundary = (start / SECTOR + 1) * SECTOR;
                let cut = (first_boundary - start + torn_sectors * SECTOR).min(d.len());
                put(&mut img, *off, &d[..cut]);
            } else {
                put(&mut img, *off, d);
            }
        }
        img
    }

    /// The image after a power loss where the disk wrote back unflushed
    /// sectors in any order: each 512-byte sector of each unflushed write
    /// (the one in flight included) reached the disk or not, as `seed` picks.
    fn after_power_loss_scrambled(&self, seed: u64) -> Vec<u8> {
        let mut img = self.durable.clone();
        let mut bits = seed | 1;
        let mut coin = move || {
            // xorshift64: reproducible from the seed, no dependency.
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            bits & 1 == 1
        };
        let writes = self.pending.iter().chain(self.in_flight.iter());
        for (off, d) in writes {
            let mut done = 0usize;
            while done < d.len() {
                let at = *off as usize + done;
                let n = (SECTOR - at % SECTOR).min(d.len() - done);
                if coin() {
                    put(&mut img, at as u64, &d[done..done + n]);
                }
                done += n;
            }
        }
        img
    }

    fn unflushed(&self) -> usize {
        self.pending.len() + usize::from(self.in_flight.is_some())
    }

    fn step(&mut self, write_at: Option<u64>) -> Result<bool, std::io::Error> {
        self.log.push(write_at);
        let n = self.ops;
        self.ops += 1;
        if self.crashed {
            return Err(io_err("power is off"));
        }
        if self.plan.crash_at == Some(n) {
            self.crashed = true;
            return Ok(false);
        }
        Ok(self.plan.fail_at != Some(n))
    }
}

fn put(img: &mut [u8], off: u64, d: &[u8]) {
    let s = off as usize;
    if let Some(dst) = img.get_mut(s..s + d.len()) {
        dst.copy_from_slice(d);
    }
}

impl Backend for FaultBackend {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let d = self.disk.lock();
        let s = off as usize;
        let end = s
            .checked_add(buf.len())
            .filter(|&e| e <= d.durable.len())
            .ok_or_else(|| io_err("read past the end"))?;
        buf.copy_from_slice(&d.durable[s..end]);
        // Unflushed writes are visible to the running system, in order.
        for (woff, data) in &d.pending {
            let (ws, we) = (*woff as usize, *woff as usize + data.len());
            let (lo, hi) = (ws.max(s), we.min(end));
            if lo < hi {
                buf[lo - s..hi - s].copy_from_slice(&data[lo - ws..hi - ws]);
            }
        }
        Ok(())
    }

    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        let mut d = self.disk.lock();
        match d.step(Some(off))? {
            true => {
                d.pending.push((off, data.to_vec()));
                Ok(())
            }
            false if d.crashed => {
                d.in_flight = Some((off, data.to_vec()));
                Err(io_err("power lost during write"))
            }
            false => Err(io_err("injected write failure")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut d = self.disk.lock();
        match d.step(None)? {
            true => {
                d.durable = d.current();
                d.pending.clear();
                Ok(())
            }
            false if d.crashed => Err(io_err("power lost during flush")),
            false => Err(io_err("injected flush failure")),
        }
    }

    fn size(&self) -> u64 {
        self.disk.lock().durable.len() as u64
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("<fault-injecting test image>")
    }
}
