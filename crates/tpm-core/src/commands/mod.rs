//! Part 3 commands, one module per chapter.

pub mod asymmetric;
pub mod attestation;
pub mod capability;
pub mod certify_x509;
pub mod clock;
pub mod commit;
pub mod context;
pub mod credential;
pub mod dictionary_attack;
pub mod duplication;
pub mod enhanced_auth;
pub mod evict;
pub mod hash;
pub mod hierarchy;
pub mod management;
pub mod nv;
pub mod nv_certify;
pub mod nv_data;
pub mod object;
pub mod pcr;
pub mod policy_authorize;
pub mod policy_signed;
pub mod policy_state;
pub mod random;
pub mod session;
pub mod signature;
pub mod startup;
pub mod symmetric;
pub mod testing;
pub mod testparms;

use crate::constants as c;
use crate::engine::{Powered, Tpm};
use crate::rc::{Rc, TpmResult};

impl Tpm {
    /// The powered-on state (commands only run while powered).
    pub(crate) fn powered(&mut self) -> TpmResult<&mut Powered> {
        self.pw.as_mut().ok_or(Rc(c::RC_INITIALIZE))
    }
}
