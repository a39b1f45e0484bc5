//! One writer per image where no lock reaches: a lease kept in the image.
//!
//! A file is locked with `flock`, but an NBD export shared by several hosts
//! (or by several clients of one qemu-storage-daemon) has no lock that all
//! of them see. The image then carries its own: the last 4 KiB block of the
//! export, beyond the regions, holds a lease record (owner, a counter the
//! holder renews, where the holder runs). The algorithm is a delta lease in
//! the manner of sanlock's, made of plain reads and writes, since NBD has no
//! compare-and-swap:
//!
//! * **Acquire.** A lease that is free (blank, or released by its holder) is
//!   claimed: write our record, flush, wait [`SETTLE`], read it back. Two
//!   instances claiming at once both write; the later write wins and the
//!   other sees it and gives up. A lease held by another instance is
//!   watched: if its counter moves, the holder is alive and we refuse; if it
//!   stays put for three of the holder's renewal intervals, the holder is
//!   dead (killed, its host lost) and we claim it. A holder on this host
//!   (same boot) is checked directly: a live process refuses at once, a dead
//!   one is taken over at once.
//! * **Renew.** The holder bumps the counter every [`INTERVAL`] (the storage
//!   thread calls [`Backend::heartbeat`]), after reading the record to check
//!   that it is still its own.
//! * **Writes** pass only while the lease was confirmed within two intervals;
//!   otherwise (the server was unreachable for a while) it is read first. A
//!   lease found taken over is lost for good: every later write fails, since
//!   another instance may be writing the image.
//! * **Release** (clean exit, hand-over with `--migration
//!   release-lock-outgoing`) marks it free, so the next instance need not
//!   wait.
//!
//! Like every lease without fencing it rests on time: a holder stalled for
//! longer than three intervals while its server stays up can be taken over
//! and notices at its next write or renewal. Instances on one host never
//! depend on that (the process check).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wire_record::{wire, Bytes, Wire};

use crate::backend::Backend;
use crate::format::{region_size_for, REGIONS_START, SLOT_SIZE};

/// How often the holder renews its lease.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// How long a claimant waits before reading its claim back: longer than any
/// competing claimant takes between reading the lease and writing its claim.
pub const SETTLE: Duration = Duration::from_millis(500);
/// A holder whose counter has not moved for this many of its intervals is dead.
const EXPIRY_INTERVALS: u32 = 3;
/// How often a held lease is read while it is watched.
const WATCH_POLL: Duration = Duration::from_millis(200);

const MAGIC: &[u8; 8] = b"VTPMLEAS";
const LEASE_VERSION: u32 = 1;
const STATE_HELD: u32 = 1;
const STATE_RELEASED: u32 = 2;
const HOST_LEN: usize = 64;
const BOOT_ID_LEN: usize = 36;

wire! {
    /// The lease record as stored at the start of the lease block.
    pub struct Stored {
        pub magic: [u8; 8],
        pub version: u32,
        pub state: u32,
        pub owner: [u8; 16],
        pub counter: u64,
        pub interval_ms: u32,
        pub boot_id: Bytes<BOOT_ID_LEN>,
        pub pid: u32,
        pub start_time: u64,
        pub host: Bytes<HOST_LEN>,
        /// crc32c of everything before it.
        pub crc: u32,
    }
}

/// Where the lease block of an export of `size` bytes lies: its last 4 KiB
/// block, when that lies beyond both regions of an image formatted on it.
pub fn lease_offset(size: u64) -> Option<u64> {
    let last = (size & !(SLOT_SIZE - 1)).checked_sub(SLOT_SIZE)?;
    (last >= REGIONS_START + 2 * region_size_for(size)).then_some(last)
}

/// One lease record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    held: bool,
    owner: [u8; 16],
    counter: u64,
    interval_ms: u32,
    boot_id: [u8; BOOT_ID_LEN],
    pid: u32,
    start_time: u64,
    host: String,
}

impl Record {
    /// This process as a holder.
    fn mine() -> Record {
        let pid = std::process::id();
        Record {
            held: true,
            owner: rand::random(),
            counter: 0,
            interval_ms: INTERVAL.as_millis() as u32,
            boot_id: boot_id(),
            pid,
            start_time: process_start(pid).unwrap_or(0),
            host: host_name(),
        }
    }

    /// The 4 KiB block (the record, zero padded).
    fn encode(&self) -> Vec<u8> {
        let stored = Stored {
            magic: *MAGIC,
            version: LEASE_VERSION,
            state: if self.held {
                STATE_HELD
            } else {
                STATE_RELEASED
            },
            owner: self.owner,
            counter: self.counter,
            interval_ms: self.interval_ms,
            boot_id: Bytes(self.boot_id),
            pid: self.pid,
            start_time: self.start_time,
            host: Bytes::from_slice(self.host.as_bytes()),
            crc: 0,
        };
        let mut v = stored.to_bytes();
        // The crc field is last: fill it in place.
        let crc = crc32c::crc32c(&v[..Stored::SIZE - 4]);
        v[Stored::SIZE - 4..Stored::SIZE].copy_from_slice(&crc.to_be_bytes());
        v.resize(SLOT_SIZE as usize, 0);
        v
    }

    /// The record in `b`, or None when `b` holds none (blank, foreign, torn).
    fn decode(b: &[u8]) -> Option<Record> {
        let stored = Stored::decode(b)?;
        if &stored.magic != MAGIC
            || stored.version != LEASE_VERSION
            || crc32c::crc32c(b.get(..Stored::SIZE - 4)?) != stored.crc
        {
            return None;
        }
        let held = match stored.state {
            STATE_HELD => true,
            STATE_RELEASED => false,
            _ => return None,
        };
        Some(Record {
            held,
            owner: stored.owner,
            counter: stored.counter,
            interval_ms: stored.interval_ms,
            boot_id: stored.boot_id.0,
            pid: stored.pid,
            start_time: stored.start_time,
            host: String::from_utf8_lossy(stored.host.trimmed()).into_owned(),
        })
    }

    /// Who holds it, for messages.
    fn describe(&self) -> String {
        format!("vtpm pid {} on {}", self.pid, self.host)
    }

    /// For a holder on this host (same boot): whether its process still runs.
    /// None for a holder elsewhere.
    fn alive_here(&self) -> Option<bool> {
        if self.boot_id != boot_id() || self.boot_id == [0; BOOT_ID_LEN] {
            return None;
        }
        Some(process_start(self.pid).is_some_and(|t| t == self.start_time))
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), zeros if unknown.
fn boot_id() -> [u8; BOOT_ID_LEN] {
    let mut id = [0u8; BOOT_ID_LEN];
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let s = s.trim().as_bytes();
        let n = s.len().min(BOOT_ID_LEN);
        id[..n].copy_from_slice(&s[..n]);
    }
    id
}

/// When process `pid` started (field 22 of /proc/PID/stat, in clock ticks
/// since boot): with the pid it names one process, whatever reuses the pid.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "an unknown host".into())
}

/// Why a lease could not be had.
#[derive(Debug)]
pub enum LeaseError {
    /// Another live instance holds it.
    Held(String),
    /// The export has no room for a lease block beyond the regions.
    NoRoom,
    /// Reading or writing the lease failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for LeaseError {
    fn from(e: std::io::Error) -> LeaseError {
        LeaseError::Io(e)
    }
}

/// A backend whose writes pass only while this instance holds the image's lease.
pub struct LeasedBackend {
    inner: Box<dyn Backend>,
    off: u64,
    me: Record,
    /// When the lease was last read back as ours.
    confirmed: Instant,
    /// When it was last renewed (or renewal last tried).
    renewed: Instant,
    /// Who took it over, once it was lost: no write passes any more.
    lost: Option<String>,
    /// Released (hand-over or drop): nothing is written any more.
    released: bool,
}

impl LeasedBackend {
    /// Take the lease of `inner`'s image (waiting as the module describes);
    /// `note` hears of a dead holder taken over.
    pub fn acquire(
        mut inner: Box<dyn Backend>,
        note: &mut dyn FnMut(String),
    ) -> Result<LeasedBackend, LeaseError> {
        let off = lease_offset(inner.size()).ok_or(LeaseError::NoRoom)?;
        let me = Record::mine();
        // A few rounds: a claim that lost a race to a holder that then died
        // at once may be tried again.
        for _ in 0..3 {
            if let Some(cur) = read(&mut *inner, off)? {
                if cur.held {
                    wait_out(&mut *inner, off, cur, note)?;
                }
            }
            inner.write_durable(&[(off, &me.encode())])?;
            std::thread::sleep(SETTLE);
            match read(&mut *inner, off)? {
                Some(r) if r.owner == me.owner => {
                    let now = Instant::now();
                    return Ok(LeasedBackend {
                        inner,
                        off,
                        me,
                        confirmed: now,
                        renewed: now,
                        lost: None,
                        released: false,
                    });
                }
                Some(r) if r.held => {
                    if r.alive_here() == Some(false) {
                        continue;
                    }
                    return Err(LeaseError::Held(r.describe()));
                }
                // Released or wiped under us: someone else is at it too; look again.
                _ => continue,
            }
        }
        Err(LeaseError::Held(
            "another instance (the lease kept changing hands while this one tried to take it)"
                .into(),
        ))
    }

    /// Read the lease back; Err once it is someone else's.
    fn confirm(&mut self) -> std::io::Result<()> {
        if let Some(who) = &self.lost {
            return Err(lost_error(&self.inner.path(), who));
        }
        if self.released {
            return Err(std::io::Error::other(format!(
                "{}: the image's lease was released: this instance does not write it any more",
                self.inner.path().display()
            )));
        }
        match read(&mut *self.inner, self.off)? {
            Some(r) if r.owner == self.me.owner && r.held => {
                self.confirmed = Instant::now();
                Ok(())
            }
            other => {
                let who = other
                    .map(|r| r.describe())
                    .unwrap_or_else(|| "someone who wiped the lease".into());
                log::error!(
                    "{}: the image's lease was taken over by {who}: this instance stops writing it",
                    self.inner.path().display()
                );
                let e = lost_error(&self.inner.path(), &who);
                self.lost = Some(who);
                Err(e)
            }
        }
    }

    /// Before a write: the lease must have been ours recently.
    fn guard(&mut self) -> std::io::Result<()> {
        if self.lost.is_some() || self.released {
            return self.confirm();
        }
        // A storage thread that always has a batch to commit never reaches its
        // heartbeat: renew here when due, or a watcher would see the counter
        // stand still under load and take the lease of a live writer.
        if self.renewed.elapsed() >= INTERVAL {
            return self.renew();
        }
        if self.confirmed.elapsed() > 2 * INTERVAL {
            self.confirm()?;
        }
        Ok(())
    }

    /// Renew now: check it is still ours, bump the counter, make it durable.
    fn renew(&mut self) -> std::io::Result<()> {
        self.renewed = Instant::now();
        self.confirm()?;
        self.me.counter = self.me.counter.wrapping_add(1);
        self.inner.write_durable(&[(self.off, &self.me.encode())])
    }

    /// Mark the lease free (once); the inner backend stays as it is.
    fn give_up(&mut self) {
        if self.released || self.lost.is_some() {
            return;
        }
        if self.confirm().is_ok() {
            let free = Record {
                held: false,
                ..self.me.clone()
            };
            let _ = self.inner.write_durable(&[(self.off, &free.encode())]);
        }
        self.released = true;
    }
}

fn lost_error(path: &std::path::Path, who: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "{}: the image's lease was taken over by {who}: this instance may not write it any more",
        path.display()
    ))
}

/// The lease record at `off`, if there is one.
fn read(be: &mut dyn Backend, off: u64) -> std::io::Result<Option<Record>> {
    let mut b = vec![0u8; SLOT_SIZE as usize];
    be.read_at(off, &mut b)?;
    Ok(Record::decode(&b))
}

/// Wait until the lease `cur`, held by another instance, is free or known
/// dead; Err(Held) while its holder lives.
fn wait_out(
    be: &mut dyn Backend,
    off: u64,
    mut cur: Record,
    note: &mut dyn FnMut(String),
) -> Result<(), LeaseError> {
    match cur.alive_here() {
        Some(true) => return Err(LeaseError::Held(cur.describe())),
        Some(false) => {
            note(format!(
                "{}: taking over the lease of {}, which is no longer running",
                be.path().display(),
                cur.describe()
            ));
            return Ok(());
        }
        None => {}
    }
    let interval = Duration::from_millis(u64::from(cur.interval_ms.clamp(100, 60_000)));
    let mut until = Instant::now() + interval * EXPIRY_INTERVALS;
    while Instant::now() < until {
        std::thread::sleep(WATCH_POLL);
        match read(be, off)? {
            Some(r) if r == cur => {}
            Some(r) if r.held && r.owner == cur.owner => {
                // Renewed: its holder lives.
                return Err(LeaseError::Held(r.describe()));
            }
            Some(r) if r.held => {
                // A new holder: watch it afresh.
                cur = r;
                until = Instant::now() + interval * EXPIRY_INTERVALS;
            }
            // Released or wiped: free.
            _ => return Ok(()),
        }
    }
    note(format!(
        "{}: taking over the lease of {}, not renewed for {} s",
        be.path().display(),
        cur.describe(),
        (interval * EXPIRY_INTERVALS).as_secs()
    ));
    Ok(())
}

impl Backend for LeasedBackend {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(off, buf)
    }

    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        self.guard()?;
        self.inner.write_at(off, data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.guard()?;
        self.inner.flush()
    }

    fn write_durable(&mut self, writes: &[(u64, &[u8])]) -> std::io::Result<()> {
        self.guard()?;
        self.inner.write_durable(writes)
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn path(&self) -> PathBuf {
        self.inner.path()
    }

    fn release(&mut self) -> std::io::Result<()> {
        self.give_up();
        self.inner.release()
    }

    fn heartbeat(&mut self) -> Option<Duration> {
        if self.released || self.lost.is_some() {
            return None;
        }
        let due = INTERVAL.saturating_sub(self.renewed.elapsed());
        if !due.is_zero() {
            return Some(due);
        }
        // A failed renewal (server unreachable) is tried again next interval;
        // writes meanwhile read the lease first (`guard`).
        let _ = self.renew();
        (self.lost.is_none()).then_some(INTERVAL)
    }
}

impl Drop for LeasedBackend {
    fn drop(&mut self) {
        self.give_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemBackend;

    const SIZE: u64 = 4 * 1024 * 1024;
    const MEM: usize = SIZE as usize;

    fn mem() -> Box<dyn Backend> {
        Box::new(MemBackend::new(MEM))
    }

    #[test]
    fn records_round_trip_and_garbage_is_none() {
        let r = Record::mine();
        assert_eq!(Record::decode(&r.encode()), Some(r.clone()));
        let mut b = r.encode();
        b[20] ^= 1;
        assert_eq!(Record::decode(&b), None);
        assert_eq!(Record::decode(&[0u8; 4096]), None);
        assert_eq!(Record::decode(&[0xffu8; 10]), None);
    }

    #[test]
    fn the_lease_block_lies_beyond_the_regions() {
        // Power-of-two sizes leave 8 KiB after the regions.
        for size in [64 * 1024, 1 << 20, 4 << 20, 1 << 30] {
            let off = lease_offset(size).expect("room");
            assert!(off >= REGIONS_START + 2 * region_size_for(size));
            assert!(off + SLOT_SIZE <= size);
        }
        // One whose regions take everything has none.
        assert_eq!(lease_offset(REGIONS_START + 2 * 512 * 1024), None);
    }

    #[test]
    fn a_free_lease_is_taken_and_a_live_holder_on_this_host_refuses_at_once() {
        let mut notes = Vec::new();
        let mut a = LeasedBackend::acquire(mem(), &mut |n| notes.push(n)).expect("free");
        a.write_at(8192, b"data").expect("holder writes");
        a.flush().expect("holder flushes");
        // The same image seen by a second instance of this (live) process.
        let mut copy = MemBackend::new(MEM);
        let mut blk = vec![0u8; 4096];
        a.inner.read_at(a.off, &mut blk).unwrap();
        copy.write_at(a.off, &blk).unwrap();
        match LeasedBackend::acquire(Box::new(copy), &mut |n| notes.push(n)) {
            Err(LeaseError::Held(who)) => assert!(who.contains(&std::process::id().to_string())),
            other => panic!("expected Held, got {:?}", other.map(|_| ())),
        }
        assert!(notes.is_empty());
    }

    #[test]
    fn a_dead_holder_on_this_host_is_taken_over() {
        let mut be = MemBackend::new(MEM);
        let off = lease_offset(SIZE).unwrap();
        let dead = Record {
            pid: u32::MAX - 7,
            ..Record::mine()
        };
        be.write_at(off, &dead.encode()).unwrap();
        let mut notes = Vec::new();
        let l = LeasedBackend::acquire(Box::new(be), &mut |n| notes.push(n)).expect("taken over");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("no longer running"), "{notes:?}");
        drop(l);
    }

    #[test]
    fn a_silent_holder_elsewhere_expires_and_a_renewing_one_refuses() {
        let off = lease_offset(SIZE).unwrap();
        // A holder on another host that never renews: expires after 3 intervals.
        let mut be = MemBackend::new(MEM);
        let elsewhere = Record {
            boot_id: [b'x'; BOOT_ID_LEN],
            interval_ms: 100,
            ..Record::mine()
        };
        be.write_at(off, &elsewhere.encode()).unwrap();
        let mut notes = Vec::new();
        LeasedBackend::acquire(Box::new(be), &mut |n| notes.push(n)).expect("expired");
        assert!(notes[0].contains("not renewed"), "{notes:?}");

        // One that renews: refused. The renewing holder is simulated by a
        // backend that bumps the counter on every read of the lease block.
        struct Renewing(MemBackend, Record);
        impl Backend for Renewing {
            fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
                self.1.counter += 1;
                self.0.write_at(off, &self.1.encode())?;
                self.0.read_at(off, buf)
            }
            fn write_at(&mut self, off: u64, d: &[u8]) -> std::io::Result<()> {
                self.0.write_at(off, d)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
            fn size(&self) -> u64 {
                self.0.size()
            }
            fn path(&self) -> PathBuf {
                "renewing".into()
            }
        }
        let be = Renewing(MemBackend::new(MEM), elsewhere);
        assert!(matches!(
            LeasedBackend::acquire(Box::new(be), &mut |_| {}),
            Err(LeaseError::Held(_))
        ));
    }

    #[test]
    fn a_lease_taken_over_fails_every_later_write() {
        let mut l = LeasedBackend::acquire(mem(), &mut |_| {}).expect("free");
        let thief = Record {
            boot_id: [b'y'; BOOT_ID_LEN],
            ..Record::mine()
        };
        let off = l.off;
        l.inner.write_at(off, &thief.encode()).unwrap();
        l.confirmed = Instant::now() - 3 * INTERVAL;
        let e = l.write_at(8192, b"x").expect_err("lost");
        assert!(e.to_string().contains("taken over"), "{e}");
        assert!(l.flush().is_err());
        assert_eq!(l.heartbeat(), None);
        // Dropping a lost lease leaves the new holder's record alone.
        let mut inner = std::mem::replace(&mut l.inner, mem());
        drop(l);
        let mut b = vec![0u8; 4096];
        inner.read_at(off, &mut b).unwrap();
        assert_eq!(Record::decode(&b), Some(thief));
    }

    #[test]
    fn release_frees_it_for_the_next_instance_at_once() {
        let mut l = LeasedBackend::acquire(mem(), &mut |_| {}).expect("free");
        l.release().expect("released");
        let off = l.off;
        let mut b = vec![0u8; 4096];
        l.inner.read_at(off, &mut b).unwrap();
        let r = Record::decode(&b).expect("record");
        assert!(!r.held);
        assert!(l.write_at(8192, b"x").is_err(), "no write after release");
    }
}
