//! Non-volatile storage (Part 3 chapter 31), the data of an index:
//! NV_Write, NV_Increment, NV_Extend, NV_SetBits and NV_Read. Each sets
//! TPMA_NV_WRITTEN; ORDERLY indices keep later changes in RAM (see
//! `Tpm::nv_data_changed`).

use super::nv::{read_access, write_access};
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::rc::{err, Rc, TpmResult};
use crate::state::nv::{nt, NvIndex, MAX_ORDERLY_COUNT, NV_BUFFER_MAX};
use crate::tpm_params;

/// TPM2B_MAX_NV_BUFFER.
pub type MaxNvBuffer = Buffer<NV_BUFFER_MAX>;

tpm_params! {
    /// TPM2_NV_Write parameters.
    pub struct WriteIn { pub data: MaxNvBuffer, pub offset: u16 }
}

tpm_params! {
    /// TPM2_NV_Extend parameters.
    pub struct ExtendIn { pub data: MaxNvBuffer }
}

tpm_params! {
    /// TPM2_NV_SetBits parameters.
    pub struct SetBitsIn { pub bits: u64 }
}

tpm_params! {
    /// TPM2_NV_Read parameters.
    pub struct ReadIn { pub size: u16, pub offset: u16 }
}

/// The index named by handle 2 after the write-access checks.
fn writable(tpm: &Tpm, ctx: &Ctx<'_>) -> TpmResult<NvIndex> {
    let (auth, h) = (ctx.handles[0], ctx.handles[1]);
    let idx = tpm.nv_present(h).map_err(|e| e.handle(2))?;
    write_access(idx, auth, h)?;
    Ok(idx.clone())
}

/// Store new data for index `h`, SET WRITTEN, and have it made durable
/// (or kept in RAM for an ORDERLY index already written, unless `force_nv`).
fn store(tpm: &mut Tpm, h: u32, data: Vec<u8>, force_nv: bool) {
    tpm.nv_data_changed(h, force_nv);
    if let Some(idx) = tpm.nv_index_mut(h) {
        idx.data = Buffer(data);
        idx.public.attributes |= c::TPMA_NV_WRITTEN;
    }
}

/// TPM2_NV_Write: merge `data` at `offset` into an ordinary or PIN index.
pub fn nv_write(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = WriteIn::parse(&mut ctx.params)?;
    let idx = writable(tpm, ctx)?;
    if matches!(idx.public.nt(), nt::COUNTER | nt::BITS | nt::EXTEND) {
        return err(c::RC_ATTRIBUTES);
    }
    let size = usize::from(idx.public.data_size);
    let (offset, len) = (usize::from(p.offset), p.data.len());
    if offset > size {
        return Err(Rc(c::RC_VALUE).param(2));
    }
    if len > size - offset {
        return err(c::RC_NV_RANGE);
    }
    if idx.public.has(c::TPMA_NV_WRITEALL) && len < size {
        return err(c::RC_NV_RANGE);
    }
    let mut data = idx.data.0.clone();
    data.resize(size, 0xFF);
    data[offset..offset + len].copy_from_slice(&p.data.0);
    if idx.public.has(c::TPMA_NV_WRITTEN) && data == idx.data.0 {
        // Same contents: no NV write (Part 3 asks this of NV with limited
        // endurance; libtpms does it too).
        return Ok(Response::default());
    }
    store(tpm, ctx.handles[1], data, false);
    Ok(Response::default())
}

/// TPM2_NV_Increment: a counter goes up by one; its first increment starts it
/// above every counter value this TPM ever had.
pub fn nv_increment(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let idx = writable(tpm, ctx)?;
    if idx.public.nt() != nt::COUNTER {
        return Err(Rc(c::RC_ATTRIBUTES).handle(2));
    }
    let old = if idx.public.has(c::TPMA_NV_WRITTEN) {
        idx.value64()
    } else {
        tpm.nv_initial_counter()
    };
    let new = old.wrapping_add(1);
    // An ORDERLY counter's NV copy is brought up to date when the RAM-only
    // low bits roll over, so a lost RAM value is below NV copy | MAX_ORDERLY_COUNT.
    let roll_over = new & MAX_ORDERLY_COUNT == 0;
    store(tpm, ctx.handles[1], new.to_be_bytes().to_vec(), roll_over);
    Ok(Response::default())
}

/// TPM2_NV_Extend: data := H_nameAlg(data || input), from a zero digest if
/// never written.
pub fn nv_extend(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ExtendIn::parse(&mut ctx.params)?;
    let idx = writable(tpm, ctx)?;
    if idx.public.nt() != nt::EXTEND {
        return Err(Rc(c::RC_ATTRIBUTES).handle(2));
    }
    let alg = idx.public.name_alg;
    let old = if idx.public.has(c::TPMA_NV_WRITTEN) {
        idx.data.0.clone()
    } else {
        vec![0; crate::types::digest_size(alg)]
    };
    let new = crate::crypto::digest(alg, &[&old, &p.data.0]);
    store(tpm, ctx.handles[1], new, false);
    Ok(Response::default())
}

/// TPM2_NV_SetBits: OR `bits` into a bit-field index (all zero if never written).
pub fn nv_set_bits(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = SetBitsIn::parse(&mut ctx.params)?;
    let idx = writable(tpm, ctx)?;
    if idx.public.nt() != nt::BITS {
        return Err(Rc(c::RC_ATTRIBUTES).handle(2));
    }
    let written = idx.public.has(c::TPMA_NV_WRITTEN);
    let old = if written { idx.value64() } else { 0 };
    let new = old | p.bits;
    if written && new == old {
        // Nothing changes: no NV write is needed.
        return Ok(Response::default());
    }
    store(tpm, ctx.handles[1], new.to_be_bytes().to_vec(), false);
    Ok(Response::default())
}

/// TPM2_NV_Read: `size` octets at `offset` of a written index.
pub fn nv_read(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ReadIn::parse(&mut ctx.params)?;
    let (auth, h) = (ctx.handles[0], ctx.handles[1]);
    let idx = tpm.nv_present(h).map_err(|e| e.handle(2))?;
    read_access(idx, auth, h)?;
    let (size, offset) = (usize::from(p.size), usize::from(p.offset));
    let data_size = usize::from(idx.public.data_size);
    if size > NV_BUFFER_MAX {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    if offset > data_size {
        return Err(Rc(c::RC_VALUE).param(2));
    }
    if size > data_size - offset {
        return err(c::RC_NV_RANGE);
    }
    let data = idx
        .data
        .0
        .get(offset..offset + size)
        .ok_or(Rc(c::RC_NV_RANGE))?;
    Ok(Response::of(&MaxNvBuffer::new(data)?))
}
