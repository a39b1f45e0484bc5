//! Test data shared by the end-to-end tests.

pub mod corpus;
pub mod ecc;
pub mod nv;
