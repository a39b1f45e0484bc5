//! The command table: for each implemented command its code, handle area
//! (interface type and authorization role of each handle), session and
//! parameter-encryption rules, and handler. It is the single source of
//! GetCapability(TPM_CAP_COMMANDS): a command not here is TPM_RC_COMMAND_CODE.

use crate::commands as cmd;
use crate::constants as c;
use crate::engine::{Response, Tpm};
use crate::marshal::Reader;
use crate::rc::TpmResult;

/// The interface type of a handle in the handle area (which values it admits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleType {
    /// TPMI_DH_PCR (`null`: TPMI_DH_PCR+).
    Pcr {
        /// TPM_RH_NULL allowed.
        null: bool,
    },
    /// TPMI_DH_OBJECT (`null`: +).
    Object {
        /// TPM_RH_NULL allowed.
        null: bool,
    },
    /// TPMI_DH_ENTITY (`null`: +).
    Entity {
        /// TPM_RH_NULL allowed.
        null: bool,
    },
    /// TPMI_RH_PLATFORM.
    Platform,
    /// TPMI_RH_PROVISION: owner or platform.
    Provision,
    /// TPMI_RH_HIERARCHY_AUTH: lockout, endorsement, owner, platform.
    HierarchyAuth,
    /// TPMI_RH_LOCKOUT.
    Lockout,
    /// TPMI_RH_ENDORSEMENT (the privacy administrator of GetTime).
    Endorsement,
    /// TPMI_RH_CLEAR: lockout or platform.
    Clear,
    /// TPMI_DH_CONTEXT: a transient object or a session.
    Context,
    /// TPMI_SH_POLICY: a policy session.
    PolicySession,
    /// TPMI_SH_HMAC: an HMAC session.
    HmacSession,
    /// TPMI_RH_HIERARCHY (`null`: +): owner, endorsement, platform.
    Hierarchy {
        /// TPM_RH_NULL allowed.
        null: bool,
    },
    /// TPMI_DH_PARENT+: an object or a hierarchy (including the null one).
    Parent,
    /// TPMI_RH_NV_AUTH: owner, platform, or an NV index.
    NvAuth,
    /// TPMI_RH_NV_INDEX: an NV index.
    NvIndex,
}

/// Authorization role a handle needs (Part 3's "@" decorations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No authorization.
    None,
    /// USER role.
    User,
    /// ADMIN role.
    Admin,
    /// DUP role (TPM2_Duplicate): a policy session only.
    Dup,
}

/// One handle of a command's handle area.
#[derive(Debug, Clone, Copy)]
pub struct HandleSpec {
    /// Admitted values.
    pub ty: HandleType,
    /// Authorization needed.
    pub role: Role,
}

/// A command handler: parses its parameters from the reader, acts, answers.
pub type Handler = fn(&mut Tpm, &mut Ctx<'_>) -> TpmResult<Response>;

/// What a handler gets.
pub struct Ctx<'a> {
    /// Locality of the command.
    pub locality: u8,
    /// Handle area values, validated.
    pub handles: &'a [u32],
    /// The parameter area (decrypted).
    pub params: Reader<'a>,
}

/// One implemented command.
pub struct CommandDef {
    /// TPM_CC.
    pub code: u32,
    /// Handle area.
    pub handles: &'static [HandleSpec],
    /// Whether authorization sessions are allowed (false: TPM_RC_AUTH_CONTEXT).
    pub sessions: bool,
    /// First command parameter is a TPM2B that may be encrypted.
    pub decrypt: bool,
    /// First response parameter is a TPM2B that may be encrypted.
    pub encrypt: bool,
    /// The response has a handle.
    pub r_handle: bool,
    /// May write NV (TPMA_CC.nv).
    pub nv: bool,
    /// Flushes objects or sessions (TPMA_CC.flushed).
    pub flushed: bool,
    /// Handler.
    pub handler: Handler,
}

/// Commands that may flush many objects (TPMA_CC.extensive), as libtpms marks them.
const EXTENSIVE: &[u32] = &[
    c::CC_HierarchyControl,
    c::CC_ChangeEPS,
    c::CC_ChangePPS,
    c::CC_Clear,
];

impl CommandDef {
    /// TPMA_CC of this command.
    pub fn attributes(&self) -> u32 {
        (self.code & 0xFFFF)
            | (self.nv as u32) << 22
            | (EXTENSIVE.contains(&self.code) as u32) << 23
            | (self.flushed as u32) << 24
            | (self.handles.len() as u32) << 25
            | (self.r_handle as u32) << 28
    }
    /// Number of handles needing authorization.
    pub fn auth_count(&self) -> usize {
        self.handles.iter().filter(|h| h.role != Role::None).count()
    }
}

const fn h(ty: HandleType, role: Role) -> HandleSpec {
    HandleSpec { ty, role }
}

use HandleType as T;
use Role as R;

macro_rules! commands {
    ($( $code:ident => { handles: [$($hs:expr),*], $(sessions: $s:expr,)? $(decrypt: $d:expr,)? $(encrypt: $e:expr,)?
        $(r_handle: $rh:expr,)? $(nv: $nv:expr,)? $(flushed: $fl:expr,)? handler: $handler:path } ),* $(,)?) => {
        /// Every implemented command, in command-code order.
        pub static COMMANDS: &[CommandDef] = &[$(
            CommandDef {
                code: c::$code,
                handles: &[$($hs),*],
                sessions: true $(&& $s)?,
                decrypt: false $(|| $d)?,
                encrypt: false $(|| $e)?,
                r_handle: false $(|| $rh)?,
                nv: false $(|| $nv)?,
                flushed: false $(|| $fl)?,
                handler: $handler,
            }
        ),*];
    };
}

commands! {
    CC_NV_UndefineSpaceSpecial => { handles: [h(T::NvIndex, R::Admin), h(T::Platform, R::User)], nv: true,
        handler: cmd::nv::nv_undefine_space_special },
    CC_EvictControl => { handles: [h(T::Provision, R::User), h(T::Object { null: false }, R::None)], nv: true,
        handler: cmd::evict::evict_control },
    CC_HierarchyControl => { handles: [h(T::Hierarchy { null: false }, R::User)], nv: true,
        handler: cmd::hierarchy::hierarchy_control },
    CC_NV_UndefineSpace => { handles: [h(T::Provision, R::User), h(T::NvIndex, R::None)], nv: true,
        handler: cmd::nv::nv_undefine_space },
    CC_ChangeEPS => { handles: [h(T::Platform, R::User)], nv: true, handler: cmd::hierarchy::change_eps },
    CC_ChangePPS => { handles: [h(T::Platform, R::User)], nv: true, handler: cmd::hierarchy::change_pps },
    CC_Clear => { handles: [h(T::Clear, R::User)], nv: true, handler: cmd::hierarchy::clear },
    CC_ClearControl => { handles: [h(T::Clear, R::User)], nv: true, handler: cmd::hierarchy::clear_control },
    CC_ClockSet => { handles: [h(T::Provision, R::User)], nv: true, handler: cmd::clock::clock_set },
    CC_HierarchyChangeAuth => { handles: [h(T::HierarchyAuth, R::User)], decrypt: true, nv: true,
        handler: cmd::hierarchy::hierarchy_change_auth },
    CC_NV_DefineSpace => { handles: [h(T::Provision, R::User)], decrypt: true, nv: true,
        handler: cmd::nv::nv_define_space },
    CC_PCR_Allocate => { handles: [h(T::Platform, R::User)], nv: true, handler: cmd::pcr::pcr_allocate },
    CC_PCR_SetAuthPolicy => { handles: [h(T::Platform, R::User)], decrypt: true, nv: true,
        handler: cmd::pcr::pcr_set_auth_policy },
    CC_PP_Commands => { handles: [h(T::Platform, R::User)], nv: true, handler: cmd::management::pp_commands },
    CC_SetPrimaryPolicy => { handles: [h(T::HierarchyAuth, R::User)], decrypt: true, nv: true,
        handler: cmd::enhanced_auth::set_primary_policy },
    CC_ClockRateAdjust => { handles: [h(T::Provision, R::User)], handler: cmd::clock::clock_rate_adjust },
    CC_CreatePrimary => { handles: [h(T::Hierarchy { null: true }, R::User)], decrypt: true, encrypt: true,
        r_handle: true, handler: cmd::object::create_primary },
    CC_NV_GlobalWriteLock => { handles: [h(T::Provision, R::User)], nv: true,
        handler: cmd::nv::nv_global_write_lock },
    CC_GetCommandAuditDigest => { handles: [h(T::Endorsement, R::User), h(T::Object { null: true }, R::User)],
        // TPMA_CC.nv as libtpms reports it (the reference clears the orderly state here).
        decrypt: true, encrypt: true, nv: true, handler: cmd::attestation::get_command_audit_digest },
    CC_NV_Increment => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None)], nv: true,
        handler: cmd::nv_data::nv_increment },
    CC_NV_SetBits => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None)], nv: true,
        handler: cmd::nv_data::nv_set_bits },
    CC_NV_Extend => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None)], decrypt: true, nv: true,
        handler: cmd::nv_data::nv_extend },
    CC_NV_Write => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None)], decrypt: true, nv: true,
        handler: cmd::nv_data::nv_write },
    CC_NV_WriteLock => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None)], nv: true,
        handler: cmd::nv::nv_write_lock },
    CC_DictionaryAttackLockReset => { handles: [h(T::Lockout, R::User)], nv: true,
        handler: cmd::dictionary_attack::lock_reset },
    CC_DictionaryAttackParameters => { handles: [h(T::Lockout, R::User)], nv: true,
        handler: cmd::dictionary_attack::parameters },
    CC_NV_ChangeAuth => { handles: [h(T::NvIndex, R::Admin)], decrypt: true, nv: true,
        handler: cmd::nv::nv_change_auth },
    CC_PCR_Event => { handles: [h(T::Pcr { null: true }, R::User)], decrypt: true, handler: cmd::pcr::pcr_event },
    CC_PCR_Reset => { handles: [h(T::Pcr { null: false }, R::User)], handler: cmd::pcr::pcr_reset },
    CC_SequenceComplete => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        flushed: true, handler: cmd::hash::sequence_complete },
    CC_SetAlgorithmSet => { handles: [h(T::Platform, R::User)], nv: true,
        handler: cmd::management::set_algorithm_set },
    CC_SetCommandCodeAuditStatus => { handles: [h(T::Provision, R::User)], nv: true,
        handler: cmd::attestation::set_command_code_audit_status },
    CC_IncrementalSelfTest => { handles: [], handler: cmd::testing::incremental_self_test },
    CC_SelfTest => { handles: [], handler: cmd::testing::self_test },
    CC_Startup => { handles: [], sessions: false, nv: true, handler: cmd::startup::startup },
    CC_Shutdown => { handles: [], nv: true, handler: cmd::startup::shutdown },
    CC_StirRandom => { handles: [], decrypt: true, handler: cmd::random::stir_random },
    CC_ActivateCredential => { handles: [h(T::Object { null: false }, R::Admin), h(T::Object { null: false }, R::User)],
        decrypt: true, encrypt: true, handler: cmd::credential::activate_credential_cmd },
    CC_Certify => { handles: [h(T::Object { null: false }, R::Admin), h(T::Object { null: true }, R::User)],
        decrypt: true, encrypt: true, handler: cmd::attestation::certify },
    CC_PolicyNV => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None), h(T::PolicySession, R::None)],
        decrypt: true, handler: cmd::policy_state::policy_nv },
    CC_CertifyCreation => { handles: [h(T::Object { null: true }, R::User), h(T::Object { null: false }, R::None)],
        decrypt: true, encrypt: true, handler: cmd::attestation::certify_creation },
    CC_Duplicate => { handles: [h(T::Object { null: false }, R::Dup), h(T::Object { null: true }, R::None)],
        decrypt: true, encrypt: true, handler: cmd::duplication::duplicate },
    CC_GetTime => { handles: [h(T::Endorsement, R::User), h(T::Object { null: true }, R::User)],
        decrypt: true, encrypt: true, handler: cmd::attestation::get_time },
    CC_GetSessionAuditDigest => { handles: [h(T::Endorsement, R::User), h(T::Object { null: true }, R::User),
        h(T::HmacSession, R::None)], decrypt: true, encrypt: true,
        handler: cmd::attestation::get_session_audit_digest },
    CC_NV_Read => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None)], encrypt: true,
        handler: cmd::nv_data::nv_read },
    CC_NV_ReadLock => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None)], nv: true,
        handler: cmd::nv::nv_read_lock },
    CC_ObjectChangeAuth => { handles: [h(T::Object { null: false }, R::Admin), h(T::Object { null: false }, R::None)],
        decrypt: true, encrypt: true, handler: cmd::object::object_change_auth },
    CC_PolicySecret => { handles: [h(T::Entity { null: false }, R::User), h(T::PolicySession, R::None)],
        decrypt: true, encrypt: true, handler: cmd::policy_signed::policy_secret },
    CC_Rewrap => { handles: [h(T::Object { null: true }, R::User), h(T::Object { null: true }, R::None)],
        decrypt: true, encrypt: true, handler: cmd::duplication::rewrap },
    CC_Create => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::object::create },
    CC_ECDH_ZGen => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::asymmetric::ecdh_zgen },
    CC_HMAC => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::symmetric::hmac },
    CC_Import => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::duplication::import },
    CC_Load => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true, r_handle: true,
        handler: cmd::object::load },
    CC_Quote => { handles: [h(T::Object { null: true }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::attestation::quote },
    CC_RSA_Decrypt => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::asymmetric::rsa_decrypt },
    CC_HMAC_Start => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, r_handle: true,
        handler: cmd::symmetric::hmac_start },
    CC_SequenceUpdate => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, handler: cmd::hash::sequence_update },
    CC_Sign => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, handler: cmd::signature::sign },
    CC_Unseal => { handles: [h(T::Object { null: false }, R::User)], encrypt: true, handler: cmd::object::unseal },
    CC_PolicySigned => { handles: [h(T::Object { null: false }, R::None), h(T::PolicySession, R::None)],
        decrypt: true, encrypt: true, handler: cmd::policy_signed::policy_signed },
    CC_ContextLoad => { handles: [], sessions: false, r_handle: true, handler: cmd::context::context_load },
    CC_ContextSave => { handles: [h(T::Context, R::None)], sessions: false, handler: cmd::context::context_save },
    CC_ECDH_KeyGen => { handles: [h(T::Object { null: false }, R::None)], encrypt: true,
        handler: cmd::asymmetric::ecdh_keygen },
    CC_EncryptDecrypt => { handles: [h(T::Object { null: false }, R::User)], encrypt: true,
        handler: cmd::symmetric::encrypt_decrypt1 },
    CC_FlushContext => { handles: [], sessions: false, handler: cmd::context::flush_context },
    CC_LoadExternal => { handles: [], decrypt: true, encrypt: true, r_handle: true, handler: cmd::object::load_external },
    CC_MakeCredential => { handles: [h(T::Object { null: false }, R::None)], decrypt: true, encrypt: true,
        handler: cmd::credential::make_credential_cmd },
    CC_NV_ReadPublic => { handles: [h(T::NvIndex, R::None)], encrypt: true, handler: cmd::nv::nv_read_public },
    CC_PolicyAuthorize => { handles: [h(T::PolicySession, R::None)], decrypt: true,
        handler: cmd::policy_authorize::policy_authorize },
    CC_PolicyAuthValue => { handles: [h(T::PolicySession, R::None)], handler: cmd::enhanced_auth::policy_auth_value },
    CC_PolicyCommandCode => { handles: [h(T::PolicySession, R::None)], handler: cmd::enhanced_auth::policy_command_code },
    CC_PolicyCounterTimer => { handles: [h(T::PolicySession, R::None)], decrypt: true,
        handler: cmd::policy_state::policy_counter_timer },
    CC_PolicyCpHash => { handles: [h(T::PolicySession, R::None)], decrypt: true, handler: cmd::enhanced_auth::policy_cp_hash },
    CC_PolicyLocality => { handles: [h(T::PolicySession, R::None)], handler: cmd::enhanced_auth::policy_locality },
    CC_PolicyNameHash => { handles: [h(T::PolicySession, R::None)], decrypt: true, handler: cmd::enhanced_auth::policy_name_hash },
    CC_PolicyOR => { handles: [h(T::PolicySession, R::None)], handler: cmd::enhanced_auth::policy_or },
    CC_PolicyTicket => { handles: [h(T::PolicySession, R::None)], decrypt: true, handler: cmd::policy_signed::policy_ticket },
    CC_ReadPublic => { handles: [h(T::Object { null: false }, R::None)], encrypt: true, handler: cmd::object::read_public },
    CC_RSA_Encrypt => { handles: [h(T::Object { null: false }, R::None)], decrypt: true, encrypt: true,
        handler: cmd::asymmetric::rsa_encrypt },
    CC_StartAuthSession => { handles: [h(T::Object { null: true }, R::None), h(T::Entity { null: true }, R::None)],
        decrypt: true, encrypt: true, r_handle: true, handler: cmd::session::start_auth_session },
    CC_VerifySignature => { handles: [h(T::Object { null: false }, R::None)], decrypt: true,
        handler: cmd::signature::verify_signature },
    CC_ECC_Parameters => { handles: [], handler: cmd::asymmetric::ecc_parameters },
    CC_GetCapability => { handles: [], handler: cmd::capability::get_capability },
    CC_GetRandom => { handles: [], encrypt: true, handler: cmd::random::get_random },
    CC_GetTestResult => { handles: [], encrypt: true, handler: cmd::testing::get_test_result },
    CC_Hash => { handles: [], decrypt: true, encrypt: true, handler: cmd::hash::hash },
    CC_PCR_Read => { handles: [], handler: cmd::pcr::pcr_read },
    CC_PolicyPCR => { handles: [h(T::PolicySession, R::None)], decrypt: true, handler: cmd::policy_state::policy_pcr },
    CC_PolicyRestart => { handles: [h(T::PolicySession, R::None)], handler: cmd::enhanced_auth::policy_restart },
    CC_ReadClock => { handles: [], handler: cmd::clock::read_clock },
    CC_PCR_Extend => { handles: [h(T::Pcr { null: true }, R::User)], handler: cmd::pcr::pcr_extend },
    CC_PCR_SetAuthValue => { handles: [h(T::Pcr { null: false }, R::User)], decrypt: true, handler: cmd::pcr::pcr_set_auth_value },
    CC_NV_Certify => { handles: [h(T::Object { null: true }, R::User), h(T::NvAuth, R::User), h(T::NvIndex, R::None)],
        decrypt: true, encrypt: true, handler: cmd::nv_certify::nv_certify },
    CC_EventSequenceComplete => { handles: [h(T::Pcr { null: true }, R::User), h(T::Object { null: false }, R::User)],
        decrypt: true, flushed: true, handler: cmd::hash::event_sequence_complete },
    CC_HashSequenceStart => { handles: [], decrypt: true, r_handle: true, handler: cmd::hash::hash_sequence_start },
    CC_PolicyPhysicalPresence => { handles: [h(T::PolicySession, R::None)],
        handler: cmd::enhanced_auth::policy_physical_presence },
    CC_PolicyDuplicationSelect => { handles: [h(T::PolicySession, R::None)], decrypt: true,
        handler: cmd::enhanced_auth::policy_duplication_select },
    CC_PolicyGetDigest => { handles: [h(T::PolicySession, R::None)], encrypt: true, handler: cmd::enhanced_auth::policy_get_digest },
    CC_TestParms => { handles: [], handler: cmd::testparms::test_parms },
    CC_Commit => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::commit::commit },
    CC_PolicyPassword => { handles: [h(T::PolicySession, R::None)], handler: cmd::enhanced_auth::policy_password },
    CC_ZGen_2Phase => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::asymmetric::zgen_2phase },
    CC_EC_Ephemeral => { handles: [], encrypt: true, handler: cmd::commit::ec_ephemeral },
    CC_PolicyNvWritten => { handles: [h(T::PolicySession, R::None)], handler: cmd::enhanced_auth::policy_nv_written },
    CC_PolicyTemplate => { handles: [h(T::PolicySession, R::None)], decrypt: true, handler: cmd::enhanced_auth::policy_template },
    CC_CreateLoaded => { handles: [h(T::Parent, R::User)], decrypt: true, encrypt: true, r_handle: true,
        handler: cmd::object::create_loaded },
    CC_PolicyAuthorizeNV => { handles: [h(T::NvAuth, R::User), h(T::NvIndex, R::None), h(T::PolicySession, R::None)],
        handler: cmd::policy_authorize::policy_authorize_nv },
    CC_EncryptDecrypt2 => { handles: [h(T::Object { null: false }, R::User)], decrypt: true, encrypt: true,
        handler: cmd::symmetric::encrypt_decrypt2 },
    CC_CertifyX509 => { handles: [h(T::Object { null: false }, R::Admin), h(T::Object { null: true }, R::User)],
        decrypt: true, encrypt: true, handler: cmd::certify_x509::certify_x509 },
}

/// The definition of command `code`, if implemented.
pub fn lookup(code: u32) -> Option<&'static CommandDef> {
    COMMANDS
        .binary_search_by_key(&code, |d| d.code)
        .ok()
        .map(|i| &COMMANDS[i])
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_is_sorted_and_unique() {
        assert!(super::COMMANDS.windows(2).all(|w| w[0].code < w[1].code));
    }
}
