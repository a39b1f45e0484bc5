//! Transient objects held in RAM: keys and data objects, hash, HMAC and event sequences.

use crate::constants as c;
use crate::crypto::{Hasher, Hmac};
use crate::rc::{err, TpmResult};
use crate::types::Auth;

/// Object slots (TPM_PT_HR_TRANSIENT_MIN, as libtpms' MAX_LOADED_OBJECTS).
pub const MAX_OBJECTS: usize = 3;

/// A hash or event sequence started by HashSequenceStart, or an HMAC
/// sequence started by HMAC_Start.
#[derive(Clone)]
pub struct Sequence {
    /// The sequence's authValue.
    pub auth: Auth,
    /// One running hash (hash sequence) or one per implemented hash (event
    /// sequence); empty for an HMAC sequence.
    pub hashers: Vec<(u16, Hasher)>,
    /// The running HMAC of an HMAC sequence (keyed with the key's bits at
    /// HMAC_Start, so the key may be flushed while the sequence goes on).
    pub hmac: Option<Box<Hmac>>,
    /// An event sequence (hashAlg was TPM_ALG_NULL).
    pub event: bool,
    /// Whether data has been added (to test the first block for TPM_GENERATED_VALUE).
    pub started: bool,
    /// False once the first block began with TPM_GENERATED_VALUE: no ticket then.
    pub ticket_ok: bool,
}

crate::tpm_struct! {
    /// One running hash of a sequence, as a context carries it.
    pub struct HashState { pub alg: u16, pub state: crate::marshal::Buffer<512> }
}

crate::tpm_struct! {
    /// A sequence as a context carries it.
    pub struct SequenceState {
        pub auth: Auth,
        pub hashers: crate::marshal::List<HashState, 4>,
        /// The HMAC of an HMAC sequence (at most one).
        pub hmac: crate::marshal::List<HashState, 1>,
        pub event: bool,
        pub started: bool,
        pub ticket_ok: bool,
    }
}

impl Sequence {
    /// The sequence's state for a context.
    pub fn to_state(&self) -> SequenceState {
        let state = |alg: u16, bytes: &[u8]| HashState {
            alg,
            state: crate::marshal::Buffer(bytes.to_vec()),
        };
        SequenceState {
            auth: self.auth.clone(),
            hashers: crate::marshal::List(
                self.hashers
                    .iter()
                    .map(|(a, h)| state(*a, &h.export()))
                    .collect(),
            ),
            hmac: crate::marshal::List(
                self.hmac
                    .iter()
                    .map(|m| state(m.alg(), &m.export()))
                    .collect(),
            ),
            event: self.event,
            started: self.started,
            ticket_ok: self.ticket_ok,
        }
    }

    /// A sequence from a context's state (None if a state does not resume).
    pub fn from_state(s: SequenceState) -> Option<Sequence> {
        let hashers = s
            .hashers
            .0
            .iter()
            .map(|h| Hasher::import(h.alg, &h.state.0).map(|x| (h.alg, x)))
            .collect::<Option<Vec<_>>>()?;
        let hmac = match s.hmac.0.first() {
            Some(h) => Some(Box::new(Hmac::import(h.alg, &h.state.0)?)),
            None => None,
        };
        Some(Sequence {
            auth: s.auth.clone(),
            hashers,
            hmac,
            event: s.event,
            started: s.started,
            ticket_ok: s.ticket_ok,
        })
    }
}

/// A loaded transient object.
#[derive(Clone)]
pub enum Object {
    /// A key or data object.
    Key(Box<crate::object::Loaded>),
    /// A hash, HMAC or event sequence.
    Sequence(Sequence),
}

/// The transient object slots.
#[derive(Clone, Default)]
pub struct Objects {
    slots: Vec<(u32, Object)>,
}

impl Objects {
    /// Load `obj`, returning its handle, or TPM_RC_OBJECT_MEMORY when full.
    pub fn insert(&mut self, obj: Object) -> TpmResult<u32> {
        if self.slots.len() >= MAX_OBJECTS {
            return err(c::RC_OBJECT_MEMORY);
        }
        let h = (0..MAX_OBJECTS as u32)
            .map(|i| c::TRANSIENT_FIRST + i)
            .find(|h| !self.slots.iter().any(|(x, _)| x == h))
            .unwrap_or(c::TRANSIENT_FIRST);
        self.slots.push((h, obj));
        Ok(h)
    }
    /// The object at `h`.
    pub fn get(&self, h: u32) -> Option<&Object> {
        self.slots.iter().find(|(x, _)| *x == h).map(|(_, o)| o)
    }
    /// The object at `h`, mutably.
    pub fn get_mut(&mut self, h: u32) -> Option<&mut Object> {
        self.slots.iter_mut().find(|(x, _)| *x == h).map(|(_, o)| o)
    }
    /// Remove the object at `h`.
    pub fn remove(&mut self, h: u32) -> Option<Object> {
        let i = self.slots.iter().position(|(x, _)| *x == h)?;
        Some(self.slots.remove(i).1)
    }
    /// Flush every key or data object of `hierarchy` (sequences belong to none).
    pub fn flush_hierarchy(&mut self, hierarchy: u32) {
        self.slots
            .retain(|(_, o)| !matches!(o, Object::Key(k) if k.hierarchy == hierarchy));
    }
    /// Handles in ascending order.
    pub fn handles(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.slots.iter().map(|(h, _)| *h).collect();
        v.sort_unstable();
        v
    }
    /// Number of loaded objects.
    pub fn count(&self) -> usize {
        self.slots.len()
    }
}

crate::tpm_struct! {
    /// One loaded object in a volatile snapshot: handle, kind (0 key, 1
    /// sequence) and its stored form.
    pub struct SavedObject { pub handle: u32, pub kind: u8, pub data: crate::marshal::Buffer<2048> }
}

/// The loaded objects as a volatile snapshot carries them.
pub type ObjectsState = crate::marshal::List<SavedObject, MAX_OBJECTS>;

impl Objects {
    /// The slots' contents for a snapshot.
    pub fn to_state(&self) -> ObjectsState {
        use crate::marshal::Marshal;
        crate::marshal::List(
            self.slots
                .iter()
                .map(|(h, o)| {
                    let (kind, data) = match o {
                        Object::Key(k) => (0, k.to_bytes()),
                        Object::Sequence(s) => (1, s.to_state().to_bytes()),
                    };
                    SavedObject {
                        handle: *h,
                        kind,
                        data: crate::marshal::Buffer(data),
                    }
                })
                .collect(),
        )
    }

    /// Slots from a snapshot; None if an entry does not decode.
    pub fn from_state(state: &ObjectsState) -> Option<Objects> {
        use crate::marshal::Unmarshal;
        let mut slots = Vec::with_capacity(state.0.len());
        for o in &state.0 {
            let in_range =
                (c::TRANSIENT_FIRST..c::TRANSIENT_FIRST + MAX_OBJECTS as u32).contains(&o.handle);
            if !in_range || slots.iter().any(|(h, _)| *h == o.handle) {
                return None;
            }
            let obj = match o.kind {
                0 => Object::Key(Box::new(crate::object::Loaded::from_bytes(&o.data.0).ok()?)),
                1 => Object::Sequence(Sequence::from_state(
                    SequenceState::from_bytes(&o.data.0).ok()?,
                )?),
                _ => return None,
            };
            slots.push((o.handle, obj));
        }
        Some(Objects { slots })
    }
}
