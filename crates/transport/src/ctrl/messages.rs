//! The request and response layouts of the swtpm control channel.
//!
//! On the socket a request is `u32 code` followed by the `req` member of the
//! matching `ptm_*` union in swtpm's `tpm_ioctl.h`; the response is the
//! `resp` member. C padding is part of the layout (`ptm_est` answers 8 bytes
//! for 5 bytes of fields), so it is declared here as [`Pad`].

use crate::wire::Pad;

crate::wire! {
    /// CMD_GET_CAPABILITY response (`ptm_cap`): no result code, just the bits.
    pub struct CapabilityResp { pub caps: u64 }
}

crate::wire! {
    /// The response of every command that returns only a result (`ptm_res`),
    /// and the error response of most commands.
    pub struct ResultResp { pub result: u32 }
}

crate::wire! {
    /// CMD_INIT request (`ptm_init.req`).
    pub struct InitReq { pub init_flags: u32 }
}

crate::wire! {
    /// CMD_GET_TPMESTABLISHED response (`ptm_est.resp`), padded to 8 bytes.
    pub struct EstablishedResp { pub result: u32, pub bit: u8, pub pad: Pad<3> }
}

crate::wire! {
    /// CMD_SET_LOCALITY and CMD_RESET_TPMESTABLISHED request (`ptm_loc.req`, `ptm_reset_est.req`).
    pub struct LocalityReq { pub loc: u8 }
}

crate::wire! {
    /// CMD_HASH_DATA request header (`ptm_hdata.req`); `length` data bytes follow.
    pub struct HashDataReq { pub length: u32 }
}

crate::wire! {
    /// CMD_GET_STATEBLOB request (`ptm_getstate.req`).
    pub struct GetStateReq { pub state_flags: u32, pub blob_type: u32, pub offset: u32 }
}

crate::wire! {
    /// CMD_GET_STATEBLOB response header (`ptm_getstate.resp` up to `data`);
    /// `length` blob bytes follow in the same response.
    pub struct GetStateResp { pub result: u32, pub state_flags: u32, pub totlength: u32, pub length: u32 }
}

crate::wire! {
    /// CMD_SET_STATEBLOB request header (`ptm_setstate.req` up to `data`);
    /// `length` blob bytes follow on the control channel.
    pub struct SetStateReq { pub state_flags: u32, pub blob_type: u32, pub length: u32 }
}

crate::wire! {
    /// CMD_GET_CONFIG response (`ptm_getconfig.resp`).
    pub struct ConfigResp { pub result: u32, pub flags: u32 }
}

crate::wire! {
    /// CMD_SET_BUFFERSIZE request (`ptm_setbuffersize.req`); 0 queries.
    pub struct BufferSizeReq { pub buffersize: u32 }
}

crate::wire! {
    /// CMD_SET_BUFFERSIZE response (`ptm_setbuffersize.resp`).
    pub struct BufferSizeResp { pub result: u32, pub buffersize: u32, pub minsize: u32, pub maxsize: u32 }
}

crate::wire! {
    /// CMD_GET_INFO request (`ptm_getinfo.req`).
    pub struct InfoReq { pub flags: u64, pub offset: u32, pub pad: u32 }
}

crate::wire! {
    /// CMD_GET_INFO response header (`ptm_getinfo.resp` up to `buffer`);
    /// `length` bytes of the NUL-terminated JSON string follow.
    pub struct InfoResp { pub result: u32, pub totlength: u32, pub length: u32 }
}

crate::wire! {
    /// CMD_LOCK_STORAGE request (`ptm_lockstorage.req`).
    pub struct LockStorageReq { pub retries: u32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;

    #[test]
    fn sizes_match_the_c_structures() {
        assert_eq!(CapabilityResp::SIZE, 8);
        assert_eq!(ResultResp::SIZE, 4);
        assert_eq!(InitReq::SIZE, 4);
        assert_eq!(EstablishedResp::SIZE, 8);
        assert_eq!(LocalityReq::SIZE, 1);
        assert_eq!(HashDataReq::SIZE, 4);
        assert_eq!(GetStateReq::SIZE, 12);
        assert_eq!(GetStateResp::SIZE, 16);
        assert_eq!(SetStateReq::SIZE, 12);
        assert_eq!(ConfigResp::SIZE, 8);
        assert_eq!(BufferSizeReq::SIZE, 4);
        assert_eq!(BufferSizeResp::SIZE, 16);
        assert_eq!(InfoReq::SIZE, 16);
        assert_eq!(InfoResp::SIZE, 12);
        assert_eq!(LockStorageReq::SIZE, 4);
    }
}
