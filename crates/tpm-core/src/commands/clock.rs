//! Clocks and timers (Part 3 chapter 29): ReadClock, ClockSet, ClockRateAdjust.

use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::rc::{Rc, TpmResult};
use crate::state::clock::CLOCK_MAX;
use crate::tpm_params;
use crate::types::{ClockInfo, TimeInfo};

tpm_params! {
    /// TPM2_ClockSet parameters.
    pub struct ClockSetIn { pub new_time: u64 }
}

tpm_params! {
    /// TPM2_ClockRateAdjust parameters (TPM_CLOCK_ADJUST).
    pub struct ClockRateAdjustIn { pub rate_adjust: i8 }
}

impl Tpm {
    /// TPMS_TIME_INFO now.
    pub(crate) fn time_info(&mut self) -> TpmResult<TimeInfo> {
        let (reset_count, restart_count) = (self.perm.reset_count, self.perm.restart_count);
        let pw = self.powered()?;
        Ok(TimeInfo {
            time: pw.clock.time(),
            clock_info: ClockInfo {
                clock: pw.clock.clock(),
                reset_count,
                restart_count,
                safe: pw.clock.safe,
            },
        })
    }
}

/// TPM2_ReadClock.
pub fn read_clock(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    Ok(Response::of(&tpm.time_info()?))
}

/// TPM2_ClockSet: the clock only moves forward, and is written to NV at once.
pub fn clock_set(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ClockSetIn::parse(&mut ctx.params)?;
    let pw = tpm.powered()?;
    if p.new_time > CLOCK_MAX || p.new_time < pw.clock.clock() {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    pw.clock.set(p.new_time);
    tpm.perm.clock = p.new_time;
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_ClockRateAdjust.
pub fn clock_rate_adjust(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ClockRateAdjustIn::parse(&mut ctx.params)?;
    if !(-3..=3).contains(&p.rate_adjust) {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    tpm.powered()?.clock.adjust(p.rate_adjust);
    Ok(Response::default())
}
