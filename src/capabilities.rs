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
    let caps = Capabilities {
        kind: "swtpm",
        features: FEATURES,
        version: env!("CARGO_PKG_VERSION"),
    };
    serde_json::to_string(&caps).unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_swtpm_shaped_json() {
        let v: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        assert_eq!(v["type"], "swtpm");
        assert!(v["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "tpm-2.0"));
        assert!(v["version"].is_string());
    }
}
