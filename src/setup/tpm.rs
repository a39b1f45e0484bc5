//! The TPM `vtpm setup` manufactures: the engine on its own TPM thread in
//! this process (the same [`TpmDevice`] `vtpm socket` serves), driven with
//! the few commands manufacturing needs. Commands carry the empty password
//! of the hierarchy they use, as swtpm_setup sends them.

use tpm_core::constants as c;
use tpm_core::marshal::{Buffer, List, Marshal, Reader, Sized2b, Unmarshal};
use tpm_core::persist::BlobKind;
use tpm_core::state::nv::NvPublic;
use tpm_core::types::{PcrSelection, PcrSelectionList, PublicArea};
use tpm_core::TpmConfig;

use super::error::{Result, SetupError};
use crate::cli::MigrationSpec;
use crate::device::{response_code, DeviceOptions, TpmDevice};
use crate::holder::StateHolder;
use crate::keys::KeySpec;
use crate::state_dir::StateSpec;

/// Largest NV_Write chunk (MAX_NV_BUFFER_SIZE).
const NV_CHUNK: usize = 1024;

/// What to do with a state that already holds a TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail (swtpm_setup without --overwrite or --not-overwrite).
    Refuse,
    /// Leave it and succeed (`--not-overwrite`).
    Keep,
    /// Erase it and manufacture a new TPM (`--overwrite`).
    Overwrite,
    /// Work on it; there must be one (`--reconfigure`).
    Reuse,
}

/// Delete every blob of the held state (durably), so the engine starts as a new TPM.
fn erase(holder: &StateHolder) -> Result<()> {
    let slot = holder.slot();
    let handle = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let handle = handle.ok_or_else(|| {
        SetupError::Vtpm(crate::error::Error::Engine(
            "the TPM state is not open".into(),
        ))
    })?;
    for kind in BlobKind::ALL {
        handle.delete(kind.name()).wait().map_err(|source| {
            SetupError::Vtpm(crate::error::Error::Nvram {
                path: holder.display(),
                source,
            })
        })?;
    }
    Ok(())
}

/// A command on the wire: code, handles, an optional password session, parameters.
struct Command {
    code: u32,
    handles: Vec<u32>,
    password: bool,
    params: Vec<u8>,
}

impl Command {
    fn new(code: u32, handles: &[u32], password: bool) -> Command {
        Command {
            code,
            handles: handles.to_vec(),
            password,
            params: Vec::new(),
        }
    }

    /// Append a parameter.
    fn param(mut self, p: &impl Marshal) -> Command {
        p.marshal(&mut self.params);
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for h in &self.handles {
            h.marshal(&mut body);
        }
        if self.password {
            // TPMS_AUTH_COMMAND: TPM_RS_PW, empty nonce, no attributes, empty password.
            let mut area = Vec::new();
            c::RS_PW.marshal(&mut area);
            Buffer::<0>(Vec::new()).marshal(&mut area);
            0u8.marshal(&mut area);
            Buffer::<0>(Vec::new()).marshal(&mut area);
            (area.len() as u32).marshal(&mut body);
            body.extend(area);
        }
        body.extend_from_slice(&self.params);
        let mut out = Vec::with_capacity(10 + body.len());
        let tag = if self.password {
            c::ST_SESSIONS
        } else {
            c::ST_NO_SESSIONS
        };
        tag.marshal(&mut out);
        ((10 + body.len()) as u32).marshal(&mut out);
        self.code.marshal(&mut out);
        out.extend(body);
        out
    }
}

/// A successful response: its handle (if the command returns one) and parameters.
struct Response {
    handle: Option<u32>,
    params: Vec<u8>,
}

/// The engine running on the state being manufactured.
pub struct SetupTpm {
    device: TpmDevice,
}

impl SetupTpm {
    /// Lock and open the state; if it holds a TPM already, do what
    /// `existing` says (keep it: `Ok(None)`). Then power the fresh TPM on
    /// and send TPM2_Startup(CLEAR).
    pub fn start(
        spec: &StateSpec,
        key: Option<&KeySpec>,
        existing: Existing,
    ) -> Result<Option<SetupTpm>> {
        let mut holder = StateHolder::new(spec.clone(), key, false)?;
        holder.acquire(Some(std::time::Duration::ZERO))?;
        if holder.read(BlobKind::Permanent.name()).is_some() {
            match existing {
                Existing::Keep => return Ok(None),
                Existing::Refuse => {
                    return Err(SetupError::Usage(format!(
                        "the TPM state {} already exists; pass --overwrite to replace it or --not-overwrite to keep it",
                        spec.display().display()
                    )))
                }
                Existing::Overwrite => erase(&holder)?,
                Existing::Reuse => {}
            }
        } else if existing == Existing::Reuse {
            return Err(SetupError::Usage(format!(
                "--reconfigure: there is no TPM state in {} to reconfigure",
                spec.display().display()
            )));
        }
        let device = TpmDevice::start(
            holder,
            DeviceOptions {
                auto_shutdown: true,
                encrypted: key.is_some(),
                migration_key: None,
                migration: MigrationSpec::default(),
                config: TpmConfig {
                    reject_locality_4: false,
                },
            },
        )?;
        let tpm = SetupTpm { device };
        tpm.device.init(false).map_err(|e| {
            SetupError::Vtpm(crate::error::Error::Engine(format!(
                "cannot power the TPM on: {}",
                e.msg
            )))
        })?;
        let rc = tpm.device.startup(c::SU_CLEAR);
        if rc != c::RC_SUCCESS {
            return Err(SetupError::Tpm {
                command: "TPM2_Startup",
                rc,
            });
        }
        Ok(Some(tpm))
    }

    fn run(&self, name: &'static str, cmd: Command, returns_handle: bool) -> Result<Response> {
        let bytes = cmd.bytes();
        let resp = self
            .device
            .handle()
            .call(move |d| d.execute(0, &bytes))
            .ok_or(SetupError::Response(name))?;
        let rc = response_code(&resp);
        if rc != c::RC_SUCCESS {
            return Err(SetupError::Tpm { command: name, rc });
        }
        let bad = |_| SetupError::Response(name);
        let mut r = Reader::new(&resp);
        let tag = u16::unmarshal(&mut r).map_err(bad)?;
        let _size = u32::unmarshal(&mut r).map_err(bad)?;
        let _rc = u32::unmarshal(&mut r).map_err(bad)?;
        let handle = if returns_handle {
            Some(u32::unmarshal(&mut r).map_err(bad)?)
        } else {
            None
        };
        let params = if tag == c::ST_SESSIONS {
            let n = u32::unmarshal(&mut r).map_err(bad)? as usize;
            r.take(n).map_err(bad)?.to_vec()
        } else {
            r.remaining().to_vec()
        };
        Ok(Response { handle, params })
    }

    /// CreatePrimary in `hierarchy`: the transient handle and the public area.
    pub fn create_primary(
        &self,
        hierarchy: u32,
        template: &PublicArea,
    ) -> Result<(u32, PublicArea)> {
        const NAME: &str = "TPM2_CreatePrimary";
        // inSensitive: empty userAuth and data.
        let mut sensitive = Vec::new();
        Buffer::<0>(Vec::new()).marshal(&mut sensitive);
        Buffer::<0>(Vec::new()).marshal(&mut sensitive);
        let cmd = Command::new(c::CC_CreatePrimary, &[hierarchy], true)
            .param(&Buffer::<1024>(sensitive))
            .param(&Sized2b(template.clone()))
            .param(&Buffer::<0>(Vec::new()))
            .param(&PcrSelectionList::default());
        let r = self.run(NAME, cmd, true)?;
        let handle = r.handle.ok_or(SetupError::Response(NAME))?;
        let public = Sized2b::<PublicArea>::unmarshal(&mut Reader::new(&r.params))
            .map_err(|_| SetupError::Response(NAME))?;
        Ok((handle, public.0))
    }

    /// EvictControl: make `object` persistent at `persistent` (owner authorization).
    pub fn persist(&self, object: u32, persistent: u32) -> Result<()> {
        let cmd = Command::new(c::CC_EvictControl, &[c::RH_OWNER, object], true).param(&persistent);
        self.run("TPM2_EvictControl", cmd, false).map(drop)
    }

    /// FlushContext of a transient object.
    pub fn flush(&self, handle: u32) -> Result<()> {
        let cmd = Command::new(c::CC_FlushContext, &[], false).param(&handle);
        self.run("TPM2_FlushContext", cmd, false).map(drop)
    }

    /// Define `index` (platform authorization, empty auth) and write `data` into it.
    pub fn nv_store(&self, index: u32, attributes: u32, data: &[u8]) -> Result<()> {
        let size = u16::try_from(data.len()).map_err(|_| {
            SetupError::Cert(format!("{} octets do not fit an NV index", data.len()))
        })?;
        let public = NvPublic {
            nv_index: index,
            name_alg: c::ALG_SHA256,
            attributes,
            auth_policy: Buffer(Vec::new()),
            data_size: size,
        };
        let cmd = Command::new(c::CC_NV_DefineSpace, &[c::RH_PLATFORM], true)
            .param(&Buffer::<0>(Vec::new()))
            .param(&Sized2b(public));
        self.run("TPM2_NV_DefineSpace", cmd, false)?;
        for (i, chunk) in data.chunks(NV_CHUNK).enumerate() {
            let offset = (i * NV_CHUNK) as u16;
            let cmd = Command::new(c::CC_NV_Write, &[c::RH_PLATFORM, index], true)
                .param(&Buffer::<NV_CHUNK>(chunk.to_vec()))
                .param(&offset);
            self.run("TPM2_NV_Write", cmd, false)?;
        }
        Ok(())
    }

    /// NV_WriteLock with platform authorization: TPMA_NV_WRITEDEFINE makes it for good.
    pub fn nv_lock(&self, index: u32) -> Result<()> {
        let cmd = Command::new(c::CC_NV_WriteLock, &[c::RH_PLATFORM, index], true);
        self.run("TPM2_NV_WriteLock", cmd, false).map(drop)
    }

    /// The PCR banks the TPM implements (GetCapability(TPM_CAP_PCRS)).
    pub fn pcr_banks(&self) -> Result<Vec<u16>> {
        const NAME: &str = "TPM2_GetCapability";
        let cmd = Command::new(c::CC_GetCapability, &[], false)
            .param(&c::CAP_PCRS)
            .param(&0u32)
            .param(&1u32);
        let r = self.run(NAME, cmd, false)?;
        let bad = |_| SetupError::Response(NAME);
        let mut rd = Reader::new(&r.params);
        let _more = u8::unmarshal(&mut rd).map_err(bad)?;
        let _cap = u32::unmarshal(&mut rd).map_err(bad)?;
        let list = PcrSelectionList::unmarshal(&mut rd).map_err(bad)?;
        Ok(list.0.iter().map(|s| s.hash).collect())
    }

    /// PCR_Allocate: all PCRs of `active`, none of the other banks in
    /// `all`. It takes effect at the next TPM reset (the next start).
    pub fn pcr_allocate(&self, all: &[u16], active: &[u16]) -> Result<()> {
        const NAME: &str = "TPM2_PCR_Allocate";
        let selections = all
            .iter()
            .map(|&hash| PcrSelection {
                hash,
                select: if active.contains(&hash) {
                    vec![0xff; 3]
                } else {
                    vec![0; 3]
                },
            })
            .collect();
        let cmd = Command::new(c::CC_PCR_Allocate, &[c::RH_PLATFORM], true).param(&List::<
            PcrSelection,
            { tpm_core::types::HASH_COUNT },
        >::from_vec(
            selections
        ));
        let r = self.run(NAME, cmd, false)?;
        // allocationSuccess comes first.
        if r.params.first() != Some(&1) {
            return Err(SetupError::Tpm {
                command: NAME,
                rc: c::RC_FAILURE,
            });
        }
        Ok(())
    }

    /// TPM2_Shutdown(CLEAR), power off and stop the TPM thread (the state is written).
    pub fn finish(self) -> Result<()> {
        let cmd = Command::new(c::CC_Shutdown, &[], false).param(&c::SU_CLEAR);
        self.run("TPM2_Shutdown", cmd, false)?;
        self.device.shutdown().map_err(|e| {
            SetupError::Vtpm(crate::error::Error::Engine(format!(
                "cannot power the TPM off: {}",
                e.msg
            )))
        })
    }
}
