//! Entities that handles refer to: which values an interface type admits,
//! whether the entity is present, its Name, authValue and authPolicy.

use crate::constants as c;
use crate::dispatch::HandleType;
use crate::engine::objects::{Object, MAX_OBJECTS};
use crate::engine::Tpm;
use crate::nv::is_nv_index;
use crate::object::Loaded;
use crate::rc::{err, TpmResult};
use crate::state::pcr::AUTH_GROUP;
use crate::types::{TaggedHash, PCR_COUNT};

fn is_pcr(h: u32) -> bool {
    (h as usize) < PCR_COUNT
}

fn is_transient(h: u32) -> bool {
    h & c::HR_RANGE_MASK == c::TRANSIENT_FIRST
}

/// Whether `h` is an HMAC or policy session handle.
pub fn is_session(h: u32) -> bool {
    matches!(
        h & c::HR_RANGE_MASK,
        c::HMAC_SESSION_FIRST | c::POLICY_SESSION_FIRST
    )
}

/// Whether `h` is a persistent object handle.
pub fn is_persistent(h: u32) -> bool {
    h & c::HR_RANGE_MASK == c::PERSISTENT_FIRST
}

/// Whether `ty` admits the handle value `h` (TPM_RC_VALUE otherwise).
pub fn admits(ty: HandleType, h: u32) -> bool {
    match ty {
        HandleType::Pcr { null } => is_pcr(h) || (null && h == c::RH_NULL),
        HandleType::Object { null } => {
            is_transient(h) || is_persistent(h) || (null && h == c::RH_NULL)
        }
        HandleType::Entity { null } => {
            matches!(
                h,
                c::RH_OWNER | c::RH_ENDORSEMENT | c::RH_PLATFORM | c::RH_LOCKOUT
            ) || is_pcr(h)
                || is_transient(h)
                || is_persistent(h)
                || crate::nv::is_nv_index(h)
                || (null && h == c::RH_NULL)
        }
        HandleType::Platform => h == c::RH_PLATFORM,
        HandleType::Provision => matches!(h, c::RH_OWNER | c::RH_PLATFORM),
        HandleType::HierarchyAuth => matches!(
            h,
            c::RH_LOCKOUT | c::RH_ENDORSEMENT | c::RH_OWNER | c::RH_PLATFORM
        ),
        HandleType::Lockout => h == c::RH_LOCKOUT,
        HandleType::Endorsement => h == c::RH_ENDORSEMENT,
        HandleType::Clear => matches!(h, c::RH_LOCKOUT | c::RH_PLATFORM),
        HandleType::PolicySession => h & c::HR_RANGE_MASK == c::POLICY_SESSION_FIRST,
        HandleType::Hierarchy { null } => {
            matches!(h, c::RH_OWNER | c::RH_ENDORSEMENT | c::RH_PLATFORM)
                || (null && h == c::RH_NULL)
        }
        HandleType::Parent => {
            is_transient(h)
                || is_persistent(h)
                || matches!(
                    h,
                    c::RH_OWNER | c::RH_ENDORSEMENT | c::RH_PLATFORM | c::RH_NULL
                )
        }
        HandleType::Context => is_transient(h) || is_session(h),
        HandleType::NvAuth => matches!(h, c::RH_OWNER | c::RH_PLATFORM) || is_nv_index(h),
        HandleType::NvIndex => is_nv_index(h),
    }
}

impl Tpm {
    /// Check that the entity `h` is present and usable; the error is unnumbered.
    pub(crate) fn check_present(&self, h: u32) -> TpmResult<()> {
        let Some(pw) = self.pw.as_ref() else {
            return err(c::RC_INITIALIZE);
        };
        match h {
            c::RH_PLATFORM | c::RH_OWNER | c::RH_ENDORSEMENT if !self.hierarchy_enabled(h) => {
                err(c::RC_HIERARCHY)
            }
            // Like libtpms: a transient handle within the slot range that is empty is
            // TPM_RC_REFERENCE_H0 (+ handle index, added by the caller), one beyond it TPM_RC_VALUE.
            _ if is_transient(h) && pw.objects.get(h).is_none() => {
                if (h & c::HR_HANDLE_MASK) < MAX_OBJECTS as u32 {
                    err(c::RC_REFERENCE_H0)
                } else {
                    err(c::RC_VALUE)
                }
            }
            // A session named in the handle area must be loaded (libtpms: REFERENCE_H0).
            _ if is_session(h) && pw.sessions.get(h).is_none() => err(c::RC_REFERENCE_H0),
            _ if is_persistent(h) && self.persistent(h).is_none() => err(c::RC_HANDLE),
            _ if is_nv_index(h) => self.nv_present(h).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Whether persistent object `h` is hidden because its hierarchy is
    /// disabled (it then looks undefined: TPM_RC_HANDLE). Handles in the
    /// platform range go with phEnable, the others with shEnable; an
    /// endorsement object also with ehEnable, except for EvictControl (`cc`),
    /// so that it can still be evicted (the reference TPM's rules).
    pub(crate) fn persistent_hidden(&self, h: u32, cc: u32) -> bool {
        const PLATFORM_PERSISTENT: u32 = 0x8180_0000;
        if !is_persistent(h) {
            return false;
        }
        let range = if h >= PLATFORM_PERSISTENT {
            c::RH_PLATFORM
        } else {
            c::RH_OWNER
        };
        if !self.hierarchy_enabled(range) {
            return true;
        }
        self.persistent(h).is_some_and(|o| {
            o.hierarchy == c::RH_ENDORSEMENT
                && !self.hierarchy_enabled(c::RH_ENDORSEMENT)
                && cc != c::CC_EvictControl
        })
    }

    /// The persistent object at `h`.
    pub(crate) fn persistent(&self, h: u32) -> Option<&Loaded> {
        self.perm
            .persistent
            .0
            .iter()
            .find(|p| p.handle == h)
            .map(|p| &p.object)
    }

    /// The key or data object at transient or persistent handle `h`.
    pub(crate) fn object(&self, h: u32) -> Option<&Loaded> {
        if is_persistent(h) {
            return self.persistent(h);
        }
        match self.pw.as_ref()?.objects.get(h)? {
            Object::Key(k) => Some(k),
            Object::Sequence(_) => None,
        }
    }

    /// The object at `h` for handle `n` of a command: TPM_RC_HANDLE if absent,
    /// TPM_RC_TYPE if it is a sequence.
    pub(crate) fn object_at(&self, h: u32, n: u32) -> TpmResult<&Loaded> {
        self.object(h).ok_or_else(|| {
            let seq = self.pw.as_ref().and_then(|p| p.objects.get(h)).is_some();
            crate::rc::Rc(if seq { c::RC_TYPE } else { c::RC_HANDLE }).handle(n)
        })
    }

    /// Whether hierarchy `h` is enabled (anything that is not a hierarchy counts as enabled).
    pub(crate) fn hierarchy_enabled(&self, h: u32) -> bool {
        let Some(pw) = self.pw.as_ref() else {
            return false;
        };
        match h {
            c::RH_PLATFORM => pw.st.ph_enable,
            c::RH_OWNER => pw.st.sh_enable,
            c::RH_ENDORSEMENT => pw.st.eh_enable,
            _ => true,
        }
    }

    /// The Name of entity `h`: the handle itself for permanent entities, PCRs and
    /// sessions; empty for sequence objects, whose public area has no nameAlg.
    pub(crate) fn entity_name(&self, h: u32) -> Vec<u8> {
        if let Some(i) = self.nv_index(h) {
            return i.public.name();
        }
        if let Some(o) = self.object(h) {
            if !o.name.is_empty() {
                return o.name.clone();
            }
        } else if is_transient(h) {
            if let Some(Object::Sequence(_)) = self.pw.as_ref().and_then(|p| p.objects.get(h)) {
                return Vec::new();
            }
        }
        h.to_be_bytes().to_vec()
    }

    /// The authValue of entity `h`, or None where it cannot be used (TPM_RC_AUTH_UNAVAILABLE).
    pub(crate) fn entity_auth(&self, h: u32) -> Option<Vec<u8>> {
        let pw = self.pw.as_ref()?;
        match h {
            c::RH_OWNER => Some(self.perm.owner_auth.0.clone()),
            c::RH_ENDORSEMENT => Some(self.perm.endorsement_auth.0.clone()),
            c::RH_LOCKOUT => Some(self.perm.lockout_auth.0.clone()),
            c::RH_PLATFORM => Some(pw.st.platform_auth.0.clone()),
            // The null hierarchy's authorization is always the empty one.
            c::RH_NULL => Some(Vec::new()),
            _ if is_pcr(h) => Some(
                AUTH_GROUP
                    .iter()
                    .position(|&p| p == h)
                    .and_then(|g| pw.st.pcr_auth.0.get(g))
                    .map(|a| a.0.clone())
                    .unwrap_or_default(),
            ),
            _ if is_nv_index(h) => self.nv_index(h).map(|i| i.auth.0.clone()),
            _ if is_transient(h) || is_persistent(h) => match self.object(h) {
                Some(o) => o.sensitive.as_ref().map(|s| s.auth_value.0.clone()),
                None => match pw.objects.get(h)? {
                    Object::Sequence(s) => Some(s.auth.0.clone()),
                    Object::Key(_) => None,
                },
            },
            _ => None,
        }
    }

    /// The authPolicy of entity `h` (TPM_ALG_NULL with no digest if it has none).
    pub(crate) fn entity_policy(&self, h: u32) -> TaggedHash {
        let none = TaggedHash {
            alg: c::ALG_NULL,
            digest: Vec::new(),
        };
        match h {
            c::RH_OWNER => self.perm.owner_policy.clone(),
            c::RH_ENDORSEMENT => self.perm.endorsement_policy.clone(),
            c::RH_LOCKOUT => self.perm.lockout_policy.clone(),
            c::RH_PLATFORM => self
                .pw
                .as_ref()
                .map(|p| p.st.platform_policy.clone())
                .unwrap_or(none),
            _ if is_pcr(h) => AUTH_GROUP
                .iter()
                .position(|&p| p == h)
                .and_then(|g| self.perm.pcr_policies.0.get(g))
                .map(|p| p.policy.clone())
                .unwrap_or(none),
            _ if is_nv_index(h) => match self.nv_index(h) {
                Some(i) if !i.public.auth_policy.is_empty() => TaggedHash {
                    alg: i.public.name_alg,
                    digest: i.public.auth_policy.0.clone(),
                },
                _ => none,
            },
            _ => match self.object(h) {
                Some(o) if !o.public.auth_policy.is_empty() => TaggedHash {
                    alg: o.public.name_alg,
                    digest: o.public.auth_policy.0.clone(),
                },
                _ => none,
            },
        }
    }

    /// Whether failed authorizations of `h` count toward dictionary-attack lockout.
    /// Hierarchies, PCRs and sequences are not DA-protected; lockoutAuth has its own
    /// rule; NV indices are unless TPMA_NV_NO_DA.
    pub(crate) fn da_protected(&self, h: u32) -> bool {
        if let Some(i) = self.nv_index(h) {
            return !i.public.has(c::TPMA_NV_NO_DA);
        }
        h == c::RH_LOCKOUT
            || self
                .object(h)
                .is_some_and(|o| !o.public.has(c::TPMA_OBJECT_NODA))
    }
}
