//! Part 2 structures, grouped by what they describe. Each is declared once
//! with the marshal macros.

mod algorithms;
mod basic;
mod capability;
mod object;
mod pcr;
mod signature;
mod sym;
mod time;

pub use algorithms::*;
pub use basic::*;
pub use capability::*;
pub use object::*;
pub use pcr::*;
pub use signature::*;
pub use sym::*;
pub use time::*;
