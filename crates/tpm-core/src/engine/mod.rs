//! The engine: power states, state loading and persisting, and the embedding
//! API used by the TPM thread. Command execution lives in `execute`.

mod execute;

pub mod objects;
mod response;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::auth::session::Sessions;
use crate::constants as c;
use crate::marshal::{Buffer, List, Unmarshal};
use crate::persist::{BlobKind, PersistError, Persistence};
use crate::state::pcr::CrtmSequence;
use crate::state::permanent::{Secret64, NOT_ORDERLY};
use crate::state::saved::StClear;
use crate::state::{
    seal, Clock, ContextState, PcrBanks, Permanent, SaveState, VolatileSnapshot, STATE_VERSION,
};
use crate::types::{Auth, TaggedHash};
use objects::Objects;

pub use response::{error_response, Response};

/// Engine configuration chosen by the embedder.
#[derive(Debug, Clone, Default)]
pub struct TpmConfig {
    /// Reject commands sent at locality 4 (swtpm --locality reject-locality-4).
    pub reject_locality_4: bool,
}

/// Errors of the engine's embedding API (not TPM response codes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or storing state failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// A state blob could not be decoded.
    #[error("state blob {} is damaged or of an unknown format: {reason}", .blob.name())]
    BadState {
        /// Which blob.
        blob: BlobKind,
        /// What is wrong.
        reason: String,
    },
    /// The operation needs the TPM powered off / on.
    #[error("{0}")]
    WrongPowerState(&'static str),
}

/// State that exists only while the TPM is powered on.
pub struct Powered {
    /// TPM2_Startup has completed.
    pub started: bool,
    pub clock: Clock,
    pub st: StClear,
    pub pcrs: PcrBanks,
    pub sessions: Sessions,
    pub objects: Objects,
    pub null_seed: Secret64,
    pub null_proof: Secret64,
    /// An H-CRTM sequence in progress.
    pub crtm: Option<CrtmSequence>,
    /// An H-CRTM measurement happened before Startup: PCR 0 keeps it.
    pub hcrtm_done: bool,
    /// The shutdown before the last Startup was orderly (TPMA_STARTUP_CLEAR.orderly).
    pub was_orderly: bool,
    /// Context key and counter (ContextSave/ContextLoad).
    pub contexts: ContextState,
    /// Dictionary-attack timers.
    pub da: crate::auth::lockout::DaTimers,
    /// Random at each _TPM_Init: Time restarts at power-on, so a policy
    /// timeout or an authorization ticket of another power cycle is void.
    pub epoch: u32,
    /// The exclusive audit session (0: none). Not in the volatile snapshot:
    /// after a restore no session is exclusive, so auditExclusive answers
    /// TPM_RC_EXCLUSIVE rather than vouching for commands it did not see.
    pub exclusive_audit: u32,
    /// The command audit digest (empty: none started since it was last
    /// cleared); its algorithm and counter are permanent.
    pub command_audit_digest: Vec<u8>,
    /// Commit counter, nonce and pending commits (TPM2_Commit, EC_Ephemeral).
    pub commit: crate::state::CommitState,
}

/// The TPM engine.
pub struct Tpm {
    persist: Box<dyn Persistence>,
    pub(crate) config: TpmConfig,
    pub(crate) perm: Permanent,
    pub(crate) pw: Option<Powered>,
    pub(crate) rng: StdRng,
    cancel: Arc<AtomicBool>,
    pub(crate) physical_presence: bool,
    pub(crate) nv_available: bool,
    /// Set by commands that changed `perm`; execute persists it before answering.
    pub(crate) perm_dirty: bool,
    /// `perm` holds changes of ORDERLY NV indices not written yet (they are
    /// written by the next permanent write: Shutdown at the latest).
    pub(crate) nv_unsaved: bool,
    /// Primary objects derived recently (CreatePrimary is deterministic).
    pub(crate) primary_cache: crate::object::generate::PrimaryCache,
}

fn decode<T: Unmarshal>(blob: BlobKind, bytes: &[u8]) -> Result<T, Error> {
    crate::state::open(bytes).map_err(|reason| Error::BadState { blob, reason })
}

/// A volatile snapshot and the loaded objects it carries, both checked.
fn decode_snapshot(bytes: &[u8]) -> Result<(VolatileSnapshot, Objects), Error> {
    if format4_with_sessions(bytes) {
        // Sessions of format 4 lack the audit digest; parsing them as format 5
        // could misread what follows, so such a snapshot is refused whole.
        return Err(Error::BadState {
            blob: BlobKind::Volatile,
            reason: "a format-4 snapshot with loaded sessions (they predate session audit)".into(),
        });
    }
    let v = decode::<VolatileSnapshot>(BlobKind::Volatile, bytes)?;
    let objects = Objects::from_state(&v.objects).ok_or_else(|| Error::BadState {
        blob: BlobKind::Volatile,
        reason: "a loaded object does not decode".into(),
    })?;
    Ok((v, objects))
}

/// Whether `bytes` is a volatile snapshot of format 4 or older holding loaded
/// sessions. Without loaded sessions the older layout equals the current one.
fn format4_with_sessions(bytes: &[u8]) -> bool {
    use crate::marshal::Reader;
    let mut r = Reader::new(bytes);
    let Ok(version) = u16::unmarshal(&mut r) else {
        return false;
    };
    if version >= 5 {
        return false;
    }
    let loaded = (|| {
        bool::unmarshal(&mut r)?;
        StClear::unmarshal(&mut r)?;
        PcrBanks::unmarshal(&mut r)?;
        Secret64::unmarshal(&mut r)?;
        Secret64::unmarshal(&mut r)?;
        u32::unmarshal(&mut r)
    })();
    // A prefix that does not parse is left to `decode` to refuse.
    loaded.is_ok_and(|n| n > 0)
}

impl Tpm {
    /// Load permanent state through `persist`, or manufacture a new TPM if there is none.
    pub fn new(mut persist: Box<dyn Persistence>, config: TpmConfig) -> Result<Tpm, Error> {
        let mut rng = StdRng::from_entropy();
        let perm = match persist.load(BlobKind::Permanent)? {
            Some(bytes) => {
                let mut p = decode::<Permanent>(BlobKind::Permanent, &bytes)?;
                // An older format is rewritten in the current one at the next write.
                p.version = STATE_VERSION;
                p
            }
            None => {
                let p = Permanent::manufacture(&mut rng);
                persist.store(BlobKind::Permanent, seal(&p))?;
                p
            }
        };
        Ok(Tpm {
            persist,
            config,
            perm,
            pw: None,
            rng,
            cancel: Arc::new(AtomicBool::new(false)),
            physical_presence: false,
            nv_available: true,
            perm_dirty: false,
            nv_unsaved: false,
            primary_cache: Default::default(),
        })
    }

    pub(crate) fn random_secret(&mut self) -> Secret64 {
        let mut b = vec![0u8; 64];
        self.rng.fill_bytes(&mut b);
        Buffer(b)
    }

    pub(crate) fn fresh_st_clear() -> StClear {
        StClear {
            platform_auth: Auth::default(),
            platform_policy: TaggedHash {
                alg: c::ALG_NULL,
                digest: Vec::new(),
            },
            ph_enable: true,
            sh_enable: true,
            eh_enable: true,
            ph_enable_nv: true,
            pcr_auth: List(vec![Auth::default(); crate::state::pcr::AUTH_GROUP.len()]),
        }
    }

    /// _TPM_Init: power on. Resumes from a stored volatile snapshot if there is
    /// one, and consumes it, so an old snapshot can never be replayed to roll PCRs
    /// back. `_delete_volatile` (swtpm's PTM_INIT_FLAG_DELETE_VOLATILE, "delete the
    /// volatile state after INIT") therefore changes nothing: vtpm always does.
    pub fn power_on(&mut self, _delete_volatile: bool) -> Result<(), Error> {
        // Decoded before it is consumed: a damaged snapshot is reported and kept.
        let snapshot = match self.persist.load(BlobKind::Volatile)? {
            Some(bytes) => Some(decode_snapshot(&bytes)?),
            None => None,
        };
        if snapshot.is_some() {
            self.persist.delete(BlobKind::Volatile)?;
        }
        let safe = self.perm.orderly != NOT_ORDERLY;
        let clock = Clock::power_on(self.perm.clock, safe);
        let powered = match snapshot {
            Some((v, objects)) => {
                let mut clock = clock;
                clock.safe = v.clock_safe;
                Powered {
                    started: v.started,
                    clock,
                    st: v.st_clear,
                    pcrs: v.pcrs,
                    sessions: v.sessions,
                    objects,
                    null_seed: v.null_seed,
                    null_proof: v.null_proof,
                    crtm: None,
                    hcrtm_done: false,
                    was_orderly: true,
                    contexts: v.contexts,
                    da: Default::default(),
                    epoch: self.rng.next_u32(),
                    exclusive_audit: 0,
                    command_audit_digest: v.command_audit_digest.0 .0.clone(),
                    commit: self.commit_or_fresh(v.commit.0),
                }
            }
            None => Powered {
                started: false,
                clock,
                st: Self::fresh_st_clear(),
                pcrs: PcrBanks::reset(&self.perm.pcr_allocation, 0),
                sessions: Sessions::default(),
                objects: Objects::default(),
                null_seed: self.random_secret(),
                null_proof: self.random_secret(),
                crtm: None,
                hcrtm_done: false,
                was_orderly: true,
                contexts: ContextState {
                    key: self.random_secret(),
                    counter: 0,
                },
                da: Default::default(),
                epoch: self.rng.next_u32(),
                exclusive_audit: 0,
                command_audit_digest: Vec::new(),
                commit: crate::state::CommitState::fresh(&mut self.rng),
            },
        };
        self.pw = Some(powered);
        Ok(())
    }

    /// Power off. Persistent state is always already durable; the clock is written
    /// so it does not fall back. Volatile state is lost, as on real power loss.
    pub fn power_off(&mut self) -> Result<(), Error> {
        if let Some(pw) = self.pw.take() {
            self.perm.clock = pw.clock.clock();
            self.store_permanent()?;
        }
        Ok(())
    }

    /// Whether the TPM is powered on.
    pub fn is_powered(&self) -> bool {
        self.pw.is_some()
    }

    pub(crate) fn store_permanent(&mut self) -> Result<(), PersistError> {
        self.persist.store(BlobKind::Permanent, seal(&self.perm))?;
        self.nv_unsaved = false;
        Ok(())
    }

    pub(crate) fn store_blob(
        &mut self,
        kind: BlobKind,
        bytes: Vec<u8>,
    ) -> Result<(), PersistError> {
        self.persist.store(kind, bytes)
    }

    pub(crate) fn load_blob(&mut self, kind: BlobKind) -> Result<Option<Vec<u8>>, PersistError> {
        self.persist.load(kind)
    }

    fn snapshot(&self) -> Option<VolatileSnapshot> {
        let pw = self.pw.as_ref()?;
        Some(VolatileSnapshot {
            version: STATE_VERSION,
            started: pw.started,
            st_clear: pw.st.clone(),
            pcrs: pw.pcrs.clone(),
            null_seed: pw.null_seed.clone(),
            null_proof: pw.null_proof.clone(),
            sessions: pw.sessions.clone(),
            contexts: pw.contexts.clone(),
            clock_safe: pw.clock.safe,
            objects: pw.objects.to_state(),
            command_audit_digest: crate::marshal::Trailing(Buffer(pw.command_audit_digest.clone())),
            commit: crate::marshal::Trailing(pw.commit.clone()),
        })
    }

    /// `saved` commit state, or a fresh one if it comes from an older format.
    pub(crate) fn commit_or_fresh(
        &mut self,
        saved: crate::state::CommitState,
    ) -> crate::state::CommitState {
        if saved.is_unset() {
            crate::state::CommitState::fresh(&mut self.rng)
        } else {
            saved
        }
    }

    /// _TPM_Hash_Start: begin an H-CRTM measurement (one hash per allocated bank).
    pub fn hash_start(&mut self) -> Result<(), Error> {
        let pw = self
            .pw
            .as_mut()
            .ok_or(Error::WrongPowerState("the TPM is not powered on"))?;
        let hashes = pw
            .pcrs
            .banks
            .0
            .iter()
            .filter(|b| b.any_allocated())
            .filter_map(|b| crate::crypto::Hasher::new(b.alg).map(|h| (b.alg, h)))
            .collect();
        pw.crtm = Some(CrtmSequence { hashes });
        Ok(())
    }

    /// _TPM_Hash_Data.
    pub fn hash_data(&mut self, data: &[u8]) -> Result<(), Error> {
        let pw = self
            .pw
            .as_mut()
            .ok_or(Error::WrongPowerState("the TPM is not powered on"))?;
        let seq = pw.crtm.as_mut().ok_or(Error::WrongPowerState(
            "no _TPM_Hash_Start before _TPM_Hash_Data",
        ))?;
        for (_, h) in seq.hashes.iter_mut() {
            h.update(data);
        }
        Ok(())
    }

    /// _TPM_Hash_End: before Startup this is an H-CRTM event (PCR 0 starts at 4 and
    /// is extended); after Startup it is a D-RTM event (PCR 17 is reset and extended,
    /// PCRs 18-22 reset). Either way tpmEstablished becomes SET.
    pub fn hash_end(&mut self) -> Result<(), Error> {
        let pw = self
            .pw
            .as_mut()
            .ok_or(Error::WrongPowerState("the TPM is not powered on"))?;
        let seq = pw.crtm.take().ok_or(Error::WrongPowerState(
            "no _TPM_Hash_Start before _TPM_Hash_End",
        ))?;
        let pcr = if pw.started {
            for i in 17..=22 {
                pw.pcrs.set_all(i, 0);
            }
            17
        } else {
            pw.pcrs.set_all(0, 0);
            for b in pw.pcrs.banks.0.iter_mut() {
                if let Some(last) = b.values.0.first_mut().and_then(|v| v.0.last_mut()) {
                    *last = 4;
                }
            }
            pw.hcrtm_done = true;
            0
        };
        for (alg, h) in seq.hashes {
            let d = h.finish();
            pw.pcrs.extend(pcr, alg, &d);
        }
        if !self.perm.tpm_established {
            self.perm.tpm_established = true;
            self.store_permanent()?;
        }
        Ok(())
    }

    /// TPM_ACCESS.tpmEstablishment.
    pub fn tpm_established(&self) -> bool {
        self.perm.tpm_established
    }

    /// Reset tpmEstablishment; only from locality 3 or 4.
    pub fn reset_established(&mut self, locality: u8) -> Result<(), Error> {
        if locality < 3 {
            return Err(Error::WrongPowerState(
                "tpmEstablished can be reset only from locality 3 or 4",
            ));
        }
        if self.perm.tpm_established {
            self.perm.tpm_established = false;
            self.store_permanent()?;
        }
        Ok(())
    }

    /// Persist the volatile state now (it is consumed by the next power_on).
    pub fn store_volatile(&mut self) -> Result<(), Error> {
        let snap = self
            .snapshot()
            .ok_or(Error::WrongPowerState("the TPM is not powered on"))?;
        // ORDERLY NV data lives in `perm` and resuming from the snapshot skips
        // Startup, so it must be in NV before the snapshot can be used.
        if self.nv_unsaved {
            self.store_permanent()?;
        }
        self.persist.store(BlobKind::Volatile, seal(&snap))?;
        Ok(())
    }

    /// The serialised state blob of `kind` (for migration). For the volatile blob
    /// of a running TPM this is a fresh snapshot.
    pub fn state_blob(&mut self, kind: BlobKind) -> Result<Vec<u8>, Error> {
        match kind {
            BlobKind::Permanent => {
                let mut p = self.perm.clone();
                if let Some(pw) = &self.pw {
                    p.clock = pw.clock.clock();
                }
                Ok(seal(&p))
            }
            BlobKind::Volatile => match self.snapshot() {
                Some(s) => Ok(seal(&s)),
                None => Ok(self.persist.load(kind)?.unwrap_or_default()),
            },
            BlobKind::SaveState => Ok(self.persist.load(kind)?.unwrap_or_default()),
        }
    }

    /// Install a state blob (only while powered off); it is validated and persisted.
    /// An empty blob removes the volatile or save state.
    pub fn set_state_blob(&mut self, kind: BlobKind, data: &[u8]) -> Result<(), Error> {
        if self.pw.is_some() {
            return Err(Error::WrongPowerState(
                "state blobs can be set only while the TPM is powered off",
            ));
        }
        match kind {
            BlobKind::Permanent => {
                let mut p: Permanent = decode(kind, data)?;
                p.version = STATE_VERSION;
                self.persist.store(kind, data.to_vec())?;
                self.perm = p;
            }
            BlobKind::Volatile | BlobKind::SaveState if data.is_empty() => {
                self.persist.delete(kind)?
            }
            BlobKind::Volatile => {
                decode_snapshot(data)?;
                self.persist.store(kind, data.to_vec())?;
            }
            BlobKind::SaveState => {
                decode::<SaveState>(kind, data)?;
                self.persist.store(kind, data.to_vec())?;
            }
        }
        Ok(())
    }

    /// Physical presence asserted or not.
    pub fn set_physical_presence(&mut self, asserted: bool) {
        self.physical_presence = asserted;
    }

    /// NV available or not; NV-writing commands fail with TPM_RC_NV_UNAVAILABLE while off.
    pub fn set_nv_available(&mut self, available: bool) {
        self.nv_available = available;
    }

    /// A flag the transport may set to cancel a long-running command (TPM_RC_CANCELED).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Use `flag` as the cancel flag: an engine created again for the same
    /// device (its state reloaded from storage) keeps the flag the transport holds.
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Tpm {
        self.cancel = flag;
        self
    }

    pub(crate) fn take_cancel(&self) -> bool {
        self.cancel.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::session::Session;
    use crate::marshal::Marshal;
    use crate::MemoryStore;

    fn snapshot_of(version: u16, sessions: usize) -> Vec<u8> {
        let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
        t.power_on(false).unwrap();
        let mut v = t.snapshot().unwrap();
        v.version = version;
        for i in 0..sessions {
            v.sessions.loaded.0.push(Session {
                handle: c::HMAC_SESSION_FIRST + i as u32,
                ..Default::default()
            });
        }
        let mut b = v.to_bytes();
        let d = crate::crypto::digest(c::ALG_SHA256, &[&b]);
        b.extend_from_slice(&d);
        b
    }

    /// A format-4 snapshot holding sessions is refused before it is parsed
    /// (its sessions lack the audit digest); without sessions it loads.
    #[test]
    fn format4_snapshots_load_only_without_sessions() {
        assert!(format4_with_sessions(&snapshot_of(4, 1)));
        assert!(decode_snapshot(&snapshot_of(4, 1)).is_err());
        assert!(!format4_with_sessions(&snapshot_of(4, 0)));
        assert!(decode_snapshot(&snapshot_of(4, 0)).is_ok());
        assert!(!format4_with_sessions(&snapshot_of(STATE_VERSION, 1)));
        assert!(decode_snapshot(&snapshot_of(STATE_VERSION, 1)).is_ok());
    }

    /// A format-5 snapshot (no commit state) loads; the engine then makes a
    /// fresh commit state, as a TPM Reset would. A format-6 one keeps it.
    #[test]
    fn snapshots_without_a_commit_state_load_with_a_fresh_one() {
        let strip = |b: Vec<u8>| {
            // The commit state is the last field: cut it (and the seal) off.
            let body = &b[..b.len() - 32];
            let commit = crate::state::CommitState::fresh(&mut rand::rngs::OsRng).to_bytes();
            let mut body = body[..body.len() - commit.len()].to_vec();
            body[..2].copy_from_slice(&5u16.to_be_bytes());
            let d = crate::crypto::digest(c::ALG_SHA256, &[&body]);
            body.extend_from_slice(&d);
            body
        };
        let (v, _) = decode_snapshot(&snapshot_of(STATE_VERSION, 0)).unwrap();
        assert!(!v.commit.0.is_unset(), "format 6 carries it");
        let (old, _) = decode_snapshot(&strip(snapshot_of(STATE_VERSION, 0))).unwrap();
        assert!(old.commit.0.is_unset(), "format 5 has none");
        let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
        assert!(!t.commit_or_fresh(old.commit.0.clone()).is_unset());
        assert_eq!(t.commit_or_fresh(v.commit.0.clone()), v.commit.0);
    }

    /// The command audit digest survives Shutdown(STATE) (TPM Resume and
    /// Restart) and is gone after a TPM Reset; the audited list and the
    /// counter are permanent.
    #[test]
    fn command_audit_digest_survives_shutdown_state() {
        use crate::test_cmd::{b2, command};
        let rc = |r: &[u8]| u32::from_be_bytes(r[6..10].try_into().unwrap());
        let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
        let cycle = |t: &mut Tpm, down: u16, up: u16| {
            if down != 0 {
                let r = t.execute(0, &command(c::CC_Shutdown, &[], None, &down.to_be_bytes()));
                assert_eq!(rc(&r), 0);
                t.power_off().unwrap();
            }
            t.power_on(false).unwrap();
            let r = t.execute(0, &command(c::CC_Startup, &[], None, &up.to_be_bytes()));
            assert_eq!(rc(&r), 0);
        };
        cycle(&mut t, 0, c::SU_CLEAR);
        let mut p = c::ALG_NULL.to_be_bytes().to_vec();
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&c::CC_Hash.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        let set = command(
            c::CC_SetCommandCodeAuditStatus,
            &[c::RH_OWNER],
            Some(&[b""]),
            &p,
        );
        assert_eq!(rc(&t.execute(0, &set)), 0);
        let mut hash = b2(b"abc");
        hash.extend_from_slice(&c::ALG_SHA256.to_be_bytes());
        hash.extend_from_slice(&c::RH_NULL.to_be_bytes());
        assert_eq!(rc(&t.execute(0, &command(c::CC_Hash, &[], None, &hash))), 0);
        let digest = t.pw.as_ref().unwrap().command_audit_digest.clone();
        assert_eq!(digest.len(), 64, "SHA-512, the default audit hash");
        assert_eq!(t.perm.audit_counter.0, 1);
        cycle(&mut t, c::SU_STATE, c::SU_STATE);
        assert_eq!(t.pw.as_ref().unwrap().command_audit_digest, digest);
        cycle(&mut t, c::SU_STATE, c::SU_CLEAR);
        assert_eq!(t.pw.as_ref().unwrap().command_audit_digest, digest);
        cycle(&mut t, c::SU_CLEAR, c::SU_CLEAR);
        assert!(t.pw.as_ref().unwrap().command_audit_digest.is_empty());
        assert_eq!(t.perm.audit_counter.0, 1);
        assert!(t.perm.command_audited(c::CC_Hash));
        // The next audited command starts the second digest.
        assert_eq!(rc(&t.execute(0, &command(c::CC_Hash, &[], None, &hash))), 0);
        assert_eq!(t.perm.audit_counter.0, 2);
    }
}
