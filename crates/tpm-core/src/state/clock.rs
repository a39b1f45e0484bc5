//! Clock and time: time counts milliseconds since _TPM_Init; clock counts
//! milliseconds the TPM has been powered over its life, advances at a rate
//! ClockRateAdjust may tune, and is written to NV every CLOCK_UPDATE ms.

use std::time::Instant;

/// Clock is written to NV when it has advanced this much (TPM_PT_CLOCK_UPDATE, ms).
pub const CLOCK_UPDATE_MS: u64 = 1 << 12;
/// Nominal rate units per millisecond-step and the step sizes of ClockRateAdjust.
const NOMINAL: i64 = 30_000;
const LIMIT: i64 = 5_000;
const STEPS: [i64; 4] = [0, 1, 30, 300];
/// Largest settable clock value (Part 3 ClockSet).
pub const CLOCK_MAX: u64 = 0xFFFF_0000_0000_0000;

/// The TPM's clock while powered.
#[derive(Debug, Clone)]
pub struct Clock {
    powered_at: Instant,
    anchor: Instant,
    anchor_clock: u64,
    rate: i64,
    /// TPMS_CLOCK_INFO.safe.
    pub safe: bool,
}

impl Clock {
    /// Start counting at power-on from the clock value last kept in NV.
    pub fn power_on(nv_clock: u64, safe: bool) -> Clock {
        let now = Instant::now();
        Clock {
            powered_at: now,
            anchor: now,
            anchor_clock: nv_clock,
            rate: NOMINAL,
            safe,
        }
    }

    /// Milliseconds since power-on.
    pub fn time(&self) -> u64 {
        self.powered_at.elapsed().as_millis() as u64
    }

    /// The current clock value.
    pub fn clock(&self) -> u64 {
        let ms = self.anchor.elapsed().as_millis() as i128;
        let adj = ms * self.rate as i128 / NOMINAL as i128;
        self.anchor_clock.saturating_add(adj.max(0) as u64)
    }

    /// Set the clock (ClockSet; the caller checked it only moves forward).
    pub fn set(&mut self, value: u64) {
        self.anchor = Instant::now();
        self.anchor_clock = value;
    }

    /// Apply a TPM_CLOCK_ADJUST step (-3..=3, validated by the caller); 0 changes nothing.
    pub fn adjust(&mut self, step: i8) {
        let now = self.clock();
        self.set(now);
        let idx = step.unsigned_abs() as usize;
        let delta = STEPS.get(idx).copied().unwrap_or(0);
        self.rate = if step == 0 {
            self.rate
        } else if step > 0 {
            (self.rate + delta).min(NOMINAL + LIMIT)
        } else {
            (self.rate - delta).max(NOMINAL - LIMIT)
        };
    }
}

/// Volatile timers of the dictionary-attack logic (auth/lockout.rs), in Time
/// (milliseconds since _TPM_Init). Kept with the clock, not with the DA
/// logic, so that the engine's state does not depend on the code that uses
/// it (auth/lockout.rs works on the engine; the engine holds only this).
#[derive(Debug, Clone, Default)]
pub struct DaTimers {
    /// Self-healing counts from here (the last failure or healing step).
    pub heal_from: u64,
    /// The last lockoutAuth failure (lockoutRecovery counts from here).
    pub lockout_from: u64,
}
