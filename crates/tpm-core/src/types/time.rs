//! Clock and time structures.

use crate::tpm_struct;

tpm_struct! {
    /// TPMS_CLOCK_INFO.
    pub struct ClockInfo {
        pub clock: u64,
        pub reset_count: u32,
        pub restart_count: u32,
        pub safe: bool,
    }
}

tpm_struct! {
    /// TPMS_TIME_INFO.
    pub struct TimeInfo {
        pub time: u64,
        pub clock_info: ClockInfo,
    }
}
