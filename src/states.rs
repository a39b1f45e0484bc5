//! `--print-states`: the TPM state blobs present in the storage, as swtpm's
//! JSON (`{"type":"swtpm","states":[{"name":"permall","size":N},...]}`),
//! with swtpm's names for vtpm's three blobs.

use serde::Serialize;
use tpm_core::persist::BlobKind;

use crate::error::{Error, Result};
use crate::keys::KeySpec;
use crate::state_dir::StateSpec;

#[derive(Serialize)]
struct State {
    name: &'static str,
    size: usize,
}

#[derive(Serialize)]
struct States {
    #[serde(rename = "type")]
    kind: &'static str,
    states: Vec<State>,
}

/// swtpm's name of a blob.
fn swtpm_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Permanent => "permall",
        BlobKind::Volatile => "volatile",
        BlobKind::SaveState => "savestate",
    }
}

/// The JSON document. A missing image has no states (and is not created).
pub fn json(state: &StateSpec, key: Option<&KeySpec>) -> Result<String> {
    let mut states = Vec::new();
    let image = state.image();
    let nbd = matches!(state.location, crate::state_dir::StateLocation::Nbd(_));
    if nbd || image.exists() {
        let _lock = state.prepare()?;
        let handle = crate::storage::open(
            state,
            state.open_options(key.map(|k| k.load()).transpose()?),
        )?;
        for kind in BlobKind::ALL {
            let blob = handle.read(kind.name()).map_err(|source| Error::Nvram {
                path: image.clone(),
                source,
            })?;
            if let Some(b) = blob {
                states.push(State {
                    name: swtpm_name(kind),
                    size: b.len(),
                });
            }
        }
    }
    serde_json::to_string(&States {
        kind: "swtpm",
        states,
    })
    .map_err(|e| Error::Process(e.to_string()))
}
