//! The engine's state, split by lifetime as the specification splits it:
//! permanent (survives everything but Clear), save state (what
//! Shutdown(STATE) keeps for Startup(STATE)) and volatile (RAM).
//! Each serialises with the wire-format traits behind a format version.

pub mod clock;
pub mod pcr;
pub mod permanent;
pub mod saved;

pub use clock::Clock;
pub use pcr::PcrBanks;
pub use permanent::Permanent;
pub use saved::{SaveState, VolatileSnapshot};

/// Format version written in front of every state blob.
pub const STATE_VERSION: u16 = 1;
