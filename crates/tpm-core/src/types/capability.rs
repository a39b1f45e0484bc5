//! TPMS_CAPABILITY_DATA and its lists (response only).

use super::pcr::PcrSelectionList;
use crate::marshal::{List, Marshal};
use crate::tpm_struct;

tpm_struct! {
    /// TPMS_ALG_PROPERTY.
    pub struct AlgProperty { pub alg: u16, pub attributes: u32 }
}

tpm_struct! {
    /// TPMS_TAGGED_PROPERTY.
    pub struct TaggedProperty { pub property: u32, pub value: u32 }
}

tpm_struct! {
    /// TPMS_TAGGED_PCR_SELECT: a PCR property and the PCRs that have it.
    pub struct TaggedPcrSelect { pub tag: u32, pub select: crate::marshal::Buffer8 }
}

/// The capability union, tagged by TPM_CAP.
#[derive(Debug, Clone)]
pub enum CapabilityData {
    /// TPM_CAP_ALGS.
    Algs(List<AlgProperty, 0x7fff>),
    /// TPM_CAP_HANDLES.
    Handles(List<u32, 0x7fff>),
    /// TPM_CAP_COMMANDS (TPMA_CC values).
    Commands(List<u32, 0x7fff>),
    /// TPM_CAP_PP_COMMANDS.
    PpCommands(List<u32, 0x7fff>),
    /// TPM_CAP_AUDIT_COMMANDS.
    AuditCommands(List<u32, 0x7fff>),
    /// TPM_CAP_PCRS.
    Pcrs(PcrSelectionList),
    /// TPM_CAP_TPM_PROPERTIES.
    TpmProperties(List<TaggedProperty, 0x7fff>),
    /// TPM_CAP_PCR_PROPERTIES.
    PcrProperties(List<TaggedPcrSelect, 0x7fff>),
    /// TPM_CAP_ECC_CURVES.
    EccCurves(List<u16, 0x7fff>),
    /// TPM_CAP_AUTH_POLICIES.
    AuthPolicies(List<TaggedPolicy, 0x7fff>),
}

tpm_struct! {
    /// TPMS_TAGGED_POLICY: a permanent handle and its policy (TPMT_HA).
    pub struct TaggedPolicy { pub handle: u32, pub policy: super::basic::TaggedHash }
}

impl Marshal for CapabilityData {
    fn marshal(&self, w: &mut Vec<u8>) {
        use crate::constants as c;
        let (cap, body): (u32, &dyn Marshal) = match self {
            CapabilityData::Algs(l) => (c::CAP_ALGS, l),
            CapabilityData::Handles(l) => (c::CAP_HANDLES, l),
            CapabilityData::Commands(l) => (c::CAP_COMMANDS, l),
            CapabilityData::PpCommands(l) => (c::CAP_PP_COMMANDS, l),
            CapabilityData::AuditCommands(l) => (c::CAP_AUDIT_COMMANDS, l),
            CapabilityData::Pcrs(l) => (c::CAP_PCRS, l),
            CapabilityData::TpmProperties(l) => (c::CAP_TPM_PROPERTIES, l),
            CapabilityData::PcrProperties(l) => (c::CAP_PCR_PROPERTIES, l),
            CapabilityData::EccCurves(l) => (c::CAP_ECC_CURVES, l),
            CapabilityData::AuthPolicies(l) => (c::CAP_AUTH_POLICIES, l),
        };
        cap.marshal(w);
        body.marshal(w);
    }
}
