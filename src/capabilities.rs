//! `--print-capabilities`: swtpm's JSON self-description, which libvirt reads
//! to decide which options it may pass. Only features vtpm really has are
//! listed; vtpm's own version is reported (not a swtpm version).

use serde::Serialize;

/// The features vtpm implements, in swtpm's vocabulary.
pub const FEATURES: &[&str] = &[
    // The only TPM family vtpm emulates; --tpm2 is accepted.
    "tpm-2.0",
    // --flags startup-clear|startup-state|startup-none.
    "flags-opt-startup",
    // --flags disable-auto-shutdown (swtpm 0.8 name).
    "flags-opt-disable-auto-shutdown",
    // --ctrl ...,terminate (swtpm 0.8 name).
    "ctrl-opt-terminate",
    // --key fd=N and --key pwdfd=N.
    "cmdarg-key-fd",
    "cmdarg-pwd-fd",
    // --print-states.
    "cmdarg-print-states",
    // --seccomp action=kill|log|none (a real filter, src/seccomp.rs).
    "cmdarg-seccomp",
    // --migration incoming,release-lock-outgoing (swtpm 0.8 name; libvirt
    // passes --migration only when this is listed).
    "cmdarg-migration",
    // --tpmstate backend-uri=dir://... and backend-uri=file://...
    "nvram-backend-dir",
    "nvram-backend-file",
    // RSA key sizes the engine creates (TPMS_RSA_PARMS keyBits). swtpm lists
    // them when started with --tpm2; vtpm is always a TPM 2.0. swtpm_setup
    // refuses --rsa-keysize N unless "rsa-keysize-N" is listed.
    "rsa-keysize-1024",
    "rsa-keysize-2048",
    "rsa-keysize-3072",
];

#[derive(Serialize)]
struct Capabilities {
    #[serde(rename = "type")]
    kind: &'static str,
    features: &'static [&'static str],
    version: &'static str,
}

/// The JSON document `--print-capabilities` prints.
pub fn json() -> String {
    document("swtpm", FEATURES)
}

/// A `--print-capabilities` document in swtpm's shape (swtpm_setup's too):
/// the tool `kind`, its `features` and vtpm's version.
pub fn document(kind: &'static str, features: &'static [&'static str]) -> String {
    let caps = Capabilities {
        kind,
        features,
        version: env!("CARGO_PKG_VERSION"),
    };
    serde_json::to_string(&caps).unwrap_or_else(|_| String::from("{}"))
}

/// A capabilities document parsed, its type checked: the document and
/// whether it lists `feature` (for the tests of both documents).
#[cfg(test)]
pub(crate) fn parse_checked(json: &str, kind: &str, feature: &str) -> (serde_json::Value, bool) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["type"], kind);
    let listed = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == feature);
    (v, listed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_swtpm_shaped_json() {
        let (v, listed) = super::parse_checked(&super::json(), "swtpm", "tpm-2.0");
        assert!(listed);
        assert!(v["version"].is_string());
    }
}
