//! Command execution in the order of Part 3 section 5: header, mode, handle
//! area, session area, authorization, parameter decryption, the command,
//! then response encryption, nonces, response HMACs and NV commit.

use zeroize::Zeroizing;

use super::response::error_response;
use super::Tpm;
use crate::auth::area::{self, AuthCommand};
use crate::auth::entity::{admits, is_session};
use crate::auth::param_crypt::transform;
use crate::auth::policy::PolicyUse;
use crate::auth::trim_zeros;
use crate::constants as c;
use crate::crypto::ct_eq;
use crate::dispatch::{lookup, CommandDef, Ctx, Role};
use crate::marshal::{marshal_u32_sized, Reader, Unmarshal};
use crate::nv::is_nv_index;
use crate::rc::{err, Rc, TpmResult};
use crate::state::clock::CLOCK_UPDATE_MS;

const CONTINUE_SESSION: u8 = c::TPMA_SESSION_CONTINUESESSION;
const DECRYPT: u8 = c::TPMA_SESSION_DECRYPT;
const ENCRYPT: u8 = c::TPMA_SESSION_ENCRYPT;
const AUDIT: u8 = c::TPMA_SESSION_AUDIT;
const AUDIT_EXCLUSIVE: u8 = c::TPMA_SESSION_AUDITEXCLUSIVE;
const AUDIT_RESET: u8 = c::TPMA_SESSION_AUDITRESET;

/// What the command phase learned about a session, kept for the response phase.
struct SessionUse {
    cmd: AuthCommand,
    /// The entity this session authorizes, if any.
    entity: Option<u32>,
    /// The HMAC key: sessionKey || authValue (or just sessionKey when bound or
    /// not authorizing).
    key: Zeroizing<Vec<u8>>,
    /// The audit session: cpHash under its hash, over the command as sent.
    audit_cp: Option<Vec<u8>>,
}

/// Whether `tag` is one of the TPM_ST values of Part 2.
fn is_structure_tag(tag: u16) -> bool {
    matches!(tag, 0x00C4 | 0x8000..=0x8002 | 0x8014..=0x801A | 0x8021..=0x8025 | 0x8029)
}

impl Tpm {
    /// Execute one command; never panics, always returns a well-formed response.
    pub fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        self.take_cancel();
        match self.run(locality, command) {
            Ok(resp) => resp,
            Err(rc) => error_response(rc.0),
        }
    }

    fn run(&mut self, locality: u8, command: &[u8]) -> TpmResult<Vec<u8>> {
        let mut r = Reader::new(command);
        let tag = u16::unmarshal(&mut r).map_err(|_| Rc(c::RC_BAD_TAG))?;
        if tag != c::ST_SESSIONS && tag != c::ST_NO_SESSIONS {
            // Like libtpms: a value that is no TPM_ST at all is TPM_RC_VALUE,
            // a TPM_ST that is no command tag is TPM_RC_BAD_TAG.
            return err(if is_structure_tag(tag) {
                c::RC_BAD_TAG
            } else {
                c::RC_VALUE
            });
        }
        let size = u32::unmarshal(&mut r).map_err(|_| Rc(c::RC_COMMAND_SIZE))?;
        if size as usize != command.len() || size < 10 {
            return err(c::RC_COMMAND_SIZE);
        }
        let cc = u32::unmarshal(&mut r).map_err(|_| Rc(c::RC_COMMAND_SIZE))?;
        let Some(pw) = self.pw.as_ref() else {
            return err(c::RC_FAILURE);
        };
        let started = pw.started;
        let def = lookup(cc).ok_or(Rc(c::RC_COMMAND_CODE))?;
        if started == (cc == c::CC_Startup) {
            return err(c::RC_INITIALIZE);
        }
        if locality == 4 && self.config.reject_locality_4 {
            return err(c::RC_LOCALITY);
        }

        // Handle area.
        let mut handles = Vec::with_capacity(def.handles.len());
        for (i, spec) in def.handles.iter().enumerate() {
            let n = i as u32 + 1;
            let h = u32::unmarshal(&mut r).map_err(|e| e.handle(n))?;
            if !admits(spec.ty, h) {
                return Err(Rc(c::RC_VALUE).handle(n));
            }
            self.check_present(h).map_err(|e| {
                if e.0 == c::RC_REFERENCE_H0 {
                    Rc(e.0 + i as u32)
                } else {
                    e.handle(n)
                }
            })?;
            if self.persistent_hidden(h, cc) {
                return Err(Rc(c::RC_HANDLE).handle(n));
            }
            handles.push(h);
        }

        // Session area.
        let auths = if tag == c::ST_SESSIONS {
            if !def.sessions {
                return err(c::RC_AUTH_CONTEXT);
            }
            // libtpms answers TPM_RC_INSUFFICIENT / TPM_RC_SIZE here where Part 3
            // names TPM_RC_AUTHSIZE; clients are tested against libtpms.
            let auth_size = u32::unmarshal(&mut r)? as usize;
            if auth_size < 9 || auth_size > r.remaining().len() {
                return err(c::RC_SIZE);
            }
            area::parse_area(r.take(auth_size)?)?
        } else {
            if def.auth_count() > 0 {
                return err(c::RC_AUTH_MISSING);
            }
            Vec::new()
        };
        let params_in = r.remaining();
        let uses = self.check_sessions(def, cc, locality, &handles, &auths, params_in)?;

        // Parameter decryption.
        let mut params = params_in.to_vec();
        if let Some(i) = uses.iter().position(|u| u.cmd.attrs & DECRYPT != 0) {
            let u = &uses[i];
            let size = params
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or(Rc(c::RC_SIZE))?;
            let data = params.get_mut(2..2 + size).ok_or(Rc(c::RC_SIZE))?;
            let s = self.session(u.cmd.handle)?.clone();
            let key = self.param_crypt_value(u.cmd.handle, u.entity)?;
            transform(&s, &key, &u.cmd.nonce, &s.nonce_tpm.0, data, false)?;
        }

        // Command audit: cpHash under the audit hash, with the Names as they
        // are before the command and the parameters as sent.
        let audit_alg = self.perm.command_audit_alg();
        let audit_cp = self.perm.command_audited(cc).then(|| {
            let names: Vec<Vec<u8>> = handles.iter().map(|&h| self.entity_name(h)).collect();
            area::cp_hash(audit_alg, cc, &names, params_in)
        });

        // The command.
        let perm_before = (def.nv || audit_cp.is_some()).then(|| self.perm.clone());
        self.perm_dirty = false;
        let mut ctx = Ctx {
            locality,
            handles: &handles,
            params: Reader::new(&params),
        };
        let result = (def.handler)(self, &mut ctx);
        let resp = match result {
            Ok(resp) => resp,
            Err(rc) => {
                if let Some(p) = perm_before {
                    self.perm = p;
                }
                self.perm_dirty = false;
                return Err(rc);
            }
        };
        // A command that changed the audit hash is not recorded: the digest
        // it cleared stays empty (libtpms).
        let audit_cp = audit_cp.filter(|_| self.perm.command_audit_alg() == audit_alg);
        let start = audit_cp.is_some()
            && self
                .pw
                .as_ref()
                .is_some_and(|p| p.command_audit_digest.is_empty());
        if start {
            // A new digest: the counter says which one it is, so it is
            // written before the command answers.
            self.perm.audit_counter.0 = self.perm.audit_counter.0.wrapping_add(1);
            self.perm_dirty = true;
        }
        self.commit(perm_before)?;
        if let (true, Some(p)) = (start, self.pw.as_mut()) {
            p.command_audit_digest = vec![0; crate::types::digest_size(audit_alg)];
        }
        self.build_response(def, cc, tag, resp, uses, audit_cp)
    }

    fn session(&self, h: u32) -> TpmResult<&crate::auth::session::Session> {
        self.pw
            .as_ref()
            .and_then(|p| p.sessions.get(h))
            .ok_or(Rc(c::RC_VALUE))
    }

    /// Session area validation and authorization checks (Part 3 5.5, 5.6).
    fn check_sessions(
        &mut self,
        def: &CommandDef,
        cc: u32,
        locality: u8,
        handles: &[u32],
        auths: &[AuthCommand],
        params: &[u8],
    ) -> TpmResult<Vec<SessionUse>> {
        let auth_roles: Vec<Role> = def
            .handles
            .iter()
            .map(|s| s.role)
            .filter(|r| *r != Role::None)
            .collect();
        let auth_handles: Vec<u32> = def
            .handles
            .iter()
            .zip(handles)
            .filter(|(s, _)| s.role != Role::None)
            .map(|(_, &h)| h)
            .collect();
        let mut decrypts = 0;
        let mut encrypts = 0;
        let mut audit_index = None;
        for (i, a) in auths.iter().enumerate() {
            let n = i as u32 + 1;
            if a.handle == c::RS_PW {
                // libtpms looks at the attributes before the position.
                if a.attrs & (DECRYPT | ENCRYPT | AUDIT | AUDIT_EXCLUSIVE | AUDIT_RESET) != 0 {
                    return Err(Rc(c::RC_ATTRIBUTES).session(n));
                }
                if i >= auth_handles.len() {
                    return Err(Rc(c::RC_HANDLE).session(n));
                }
            } else if is_session(a.handle) {
                if self.session(a.handle).is_err() {
                    return err(c::RC_REFERENCE_S0 + i as u32);
                }
            } else {
                return Err(Rc(c::RC_VALUE).session(n));
            }
            if a.attrs & AUDIT != 0 {
                // As libtpms: only an HMAC session audits, and only one per command.
                let policy = self.session(a.handle).is_ok_and(|s| s.is_policy());
                if policy || audit_index.is_some() {
                    return Err(Rc(c::RC_ATTRIBUTES).session(n));
                }
                audit_index = Some(i);
            } else if a.attrs & (AUDIT_EXCLUSIVE | AUDIT_RESET) != 0 {
                return Err(Rc(c::RC_ATTRIBUTES).session(n));
            }
            if a.attrs & DECRYPT != 0 {
                decrypts += 1;
                if decrypts > 1 || !def.decrypt {
                    return Err(Rc(c::RC_ATTRIBUTES).session(n));
                }
            }
            if a.attrs & ENCRYPT != 0 {
                encrypts += 1;
                if encrypts > 1 || !def.encrypt {
                    return Err(Rc(c::RC_ATTRIBUTES).session(n));
                }
            }
            if i >= auth_handles.len() && a.attrs & (DECRYPT | ENCRYPT | AUDIT) == 0 {
                return Err(Rc(c::RC_ATTRIBUTES).session(n));
            }
        }
        if auths.len() < auth_handles.len() {
            return err(c::RC_AUTH_MISSING);
        }
        if let Some(i) = audit_index {
            // auditExclusive asks that no command went unaudited since this
            // session last audited; a session's first audit and auditReset
            // start a new exclusive run, so they pass (as libtpms).
            let a = &auths[i];
            let started = self
                .session(a.handle)
                .is_ok_and(|s| !s.audit_digest.is_empty());
            let exclusive = self.pw.as_ref().map(|p| p.exclusive_audit) == Some(a.handle);
            if a.attrs & AUDIT_EXCLUSIVE != 0 && a.attrs & AUDIT_RESET == 0 && started && !exclusive
            {
                return err(c::RC_EXCLUSIVE);
            }
        }

        let names: Vec<Vec<u8>> = handles.iter().map(|&h| self.entity_name(h)).collect();
        // Nonces of a separate decrypt/encrypt session go into the first session's HMAC.
        let nonce_of = |attr: u8| -> Option<(usize, Vec<u8>)> {
            let i = auths.iter().position(|a| a.attrs & attr != 0)?;
            let s = self.pw.as_ref()?.sessions.get(auths[i].handle)?;
            Some((i, s.nonce_tpm.0.clone()))
        };
        let dec = nonce_of(DECRYPT);
        let dec_index = dec.as_ref().map(|(i, _)| *i);
        let nonce_dec = dec
            .filter(|(i, _)| *i != 0)
            .map(|(_, n)| n)
            .unwrap_or_default();
        // A session that both decrypts and encrypts contributes its nonce once
        // (the reference TPM's rule, which tpm2-tss follows).
        let nonce_enc = nonce_of(ENCRYPT)
            .filter(|(i, _)| *i != 0 && Some(*i) != dec_index)
            .map(|(_, n)| n)
            .unwrap_or_default();

        let mut uses = Vec::with_capacity(auths.len());
        for (i, a) in auths.iter().enumerate() {
            let n = i as u32 + 1;
            let entity = auth_handles.get(i).copied();
            let auth = match entity {
                Some(h) => Zeroizing::new(self.entity_auth(h).ok_or(Rc(c::RC_AUTH_UNAVAILABLE))?),
                None => Zeroizing::new(Vec::new()),
            };
            if let Some(h) = entity {
                let policy =
                    is_session(a.handle) && self.session(a.handle).is_ok_and(|s| s.is_policy());
                if policy && is_nv_index(h) && !self.nv_policy_usable(h, auth_roles[i], cc) {
                    return err(c::RC_AUTH_UNAVAILABLE);
                }
                if !policy && !self.auth_value_usable(h, auth_roles[i], cc) {
                    // As libtpms: a role only a policy can serve (DUP, ADMIN of an
                    // adminWithPolicy object) is TPM_RC_AUTH_TYPE.
                    return err(if auth_roles[i] == Role::User {
                        c::RC_AUTH_UNAVAILABLE
                    } else {
                        c::RC_AUTH_TYPE
                    });
                }
            }
            // Physical presence first: without it the authorization is not even tried.
            if entity == Some(c::RH_PLATFORM) && self.pp_required(cc) && !self.physical_presence {
                return Err(Rc(c::RC_PP).session(n));
            }
            // A policy session that uses no authValue (no PolicyAuthValue or
            // PolicyPassword) is not subject to lockout, as in libtpms.
            let uses_value = !is_session(a.handle)
                || self
                    .session(a.handle)
                    .is_ok_and(|s| !s.is_policy() || s.auth_value_needed || s.password_needed);
            if let Some(h) = entity.filter(|&h| uses_value && self.da_protected(h)) {
                self.da_check(h)?;
            }
            if a.handle == c::RS_PW {
                let h = entity.unwrap_or(c::RH_NULL);
                if !ct_eq(trim_zeros(&a.hmac), trim_zeros(&auth)) {
                    return Err(self.auth_failure(h, n));
                }
                self.nv_pin_result(h, true)?;
                uses.push(SessionUse {
                    cmd: a.clone(),
                    entity,
                    key: Zeroizing::new(Vec::new()),
                    audit_cp: None,
                });
                continue;
            }
            let s = self.session(a.handle)?;
            let key = self.session_value(a.handle, entity)?;
            // One cpHash serves the authorization and the session's audit.
            let cp = if entity.is_some() || a.attrs & AUDIT != 0 {
                area::cp_hash(s.auth_hash, cc, &names, params)
            } else {
                Vec::new()
            };
            let audit_cp = (a.attrs & AUDIT != 0).then(|| cp.clone());
            if let Some(h) = entity {
                if s.is_policy() {
                    let pu = PolicyUse {
                        entity: h,
                        role: auth_roles[i],
                        cc,
                        cp_hash: &cp,
                        names: &names,
                        params,
                        locality,
                    };
                    self.check_policy(s, &pu, n)?;
                    if s.password_needed && !ct_eq(trim_zeros(&a.hmac), trim_zeros(&auth)) {
                        return Err(self.auth_failure(h, n));
                    }
                }
                // An HMAC session always proves itself; a policy session only after
                // PolicyAuthValue (the reference TPM's rule).
                if !s.is_policy() || s.auth_value_needed {
                    let extra: Vec<&[u8]> = if i == 0 {
                        vec![&nonce_dec, &nonce_enc]
                    } else {
                        vec![]
                    };
                    let expect = area::session_hmac(
                        s.auth_hash,
                        &key,
                        &cp,
                        &a.nonce,
                        &s.nonce_tpm.0,
                        &extra,
                        a.attrs,
                    );
                    if !ct_eq(&expect, &a.hmac) {
                        return Err(self.auth_failure(h, n));
                    }
                }
                self.nv_pin_result(h, true)?;
            }
            uses.push(SessionUse {
                cmd: a.clone(),
                entity,
                key,
                audit_cp,
            });
        }
        Ok(uses)
    }

    /// The code for a failed authorization of `h` by session `n`, counting it
    /// toward lockout when `h` is DA-protected.
    fn auth_failure(&mut self, h: u32, n: u32) -> Rc {
        // A PIN Fail index counts the failure itself (it is always NO_DA).
        if let Err(rc) = self.nv_pin_result(h, false) {
            return rc;
        }
        if self.da_protected(h) {
            self.da_failure(h);
            Rc(c::RC_AUTH_FAIL).session(n)
        } else {
            Rc(c::RC_BAD_AUTH).session(n)
        }
    }

    /// Whether a password or HMAC session may authorize `h` in `role`: objects
    /// say so with userWithAuth (USER) and adminWithPolicy (ADMIN), NV indices
    /// with their attributes (see `nv_auth_value_usable`); the DUP role always
    /// needs a policy.
    fn auth_value_usable(&self, h: u32, role: Role, cc: u32) -> bool {
        if is_nv_index(h) {
            return self.nv_auth_value_usable(h, role, cc);
        }
        let Some(o) = self.object(h) else {
            return role != Role::Dup;
        };
        match role {
            Role::User => o.public.has(c::TPMA_OBJECT_USERWITHAUTH),
            Role::Admin => !o.public.has(c::TPMA_OBJECT_ADMINWITHPOLICY),
            Role::Dup => false,
            Role::None => true,
        }
    }

    /// sessionKey || authValue of `entity` (without the authValue when the
    /// session is bound to it), from the entity's current authValue.
    fn session_value(&self, session: u32, entity: Option<u32>) -> TpmResult<Zeroizing<Vec<u8>>> {
        let s = self.session(session)?;
        let mut key = Zeroizing::new(s.session_key.0.clone());
        // A policy session's HMAC includes the authValue only after PolicyAuthValue.
        let entity = entity.filter(|_| !s.is_policy() || s.auth_value_needed);
        if let Some(h) = entity {
            let auth = Zeroizing::new(self.entity_auth(h).unwrap_or_default());
            if !s.is_bound_to(&self.entity_name(h), &auth) {
                key.extend_from_slice(trim_zeros(&auth));
            }
        }
        Ok(key)
    }

    /// The key of parameter encryption: sessionKey || authValue of the entity
    /// the session authorizes (nothing for a session that only encrypts). Unlike
    /// the HMAC key, the authValue is included even when the session is bound
    /// to that entity, and for policy sessions too (the reference TPM's rule,
    /// which tpm2-tss follows).
    fn param_crypt_value(
        &self,
        session: u32,
        entity: Option<u32>,
    ) -> TpmResult<Zeroizing<Vec<u8>>> {
        let s = self.session(session)?;
        let mut key = Zeroizing::new(s.session_key.0.clone());
        if let Some(h) = entity {
            let auth = Zeroizing::new(self.entity_auth(h).unwrap_or_default());
            key.extend_from_slice(trim_zeros(&auth));
        }
        Ok(key)
    }

    /// Persist permanent state the command changed (and the clock when due);
    /// on failure the command's changes are undone and the caller is told.
    fn commit(&mut self, before: Option<crate::state::Permanent>) -> TpmResult<()> {
        if let Some(pw) = self.pw.as_ref() {
            let now = pw.clock.clock();
            if now >= self.perm.clock.saturating_add(CLOCK_UPDATE_MS) {
                self.perm.clock = now;
                self.perm_dirty = true;
            }
        }
        if !self.perm_dirty {
            return Ok(());
        }
        self.perm_dirty = false;
        let ok = self.nv_available && self.store_permanent().is_ok();
        if !ok {
            if let Some(p) = before {
                self.perm = p;
                return err(if self.nv_available {
                    c::RC_NV_RATE
                } else {
                    c::RC_NV_UNAVAILABLE
                });
            }
        }
        Ok(())
    }

    fn build_response(
        &mut self,
        def: &CommandDef,
        cc: u32,
        tag: u16,
        resp: super::Response,
        uses: Vec<SessionUse>,
        audit_cp: Option<Vec<u8>>,
    ) -> TpmResult<Vec<u8>> {
        let mut params = resp.params;
        // The response is keyed with the authValues as they are after the command
        // (HierarchyChangeAuth answers under the new value), as the reference does.
        let mut uses = uses;
        for u in uses.iter_mut().filter(|u| u.cmd.handle != c::RS_PW) {
            if let Ok(k) = self.session_value(u.cmd.handle, u.entity) {
                u.key = k;
            }
        }
        // New nonceTPM for every HMAC/policy session still loaded.
        let mut new_nonces: Vec<Option<Vec<u8>>> = Vec::with_capacity(uses.len());
        for u in &uses {
            let len = self
                .pw
                .as_ref()
                .and_then(|p| p.sessions.get(u.cmd.handle))
                .map(|s| s.digest_len());
            new_nonces.push(len.map(|n| {
                let mut v = vec![0u8; n];
                rand::RngCore::fill_bytes(&mut self.rng, &mut v);
                v
            }));
        }
        if let Some(i) = uses.iter().position(|u| u.cmd.attrs & ENCRYPT != 0) {
            if let (Some(nonce), Some(s)) = (
                &new_nonces[i],
                self.pw
                    .as_ref()
                    .and_then(|p| p.sessions.get(uses[i].cmd.handle)),
            ) {
                let s = s.clone();
                let size = params
                    .get(..2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                    .unwrap_or(0);
                if let Some(data) = params.get_mut(2..2 + size) {
                    let key = self.param_crypt_value(uses[i].cmd.handle, uses[i].entity)?;
                    transform(&s, &key, nonce, &uses[i].cmd.nonce, data, true)?;
                }
            }
        }

        // Command audit: rpHash over the response parameters as sent.
        if let (Some(cp), Some(p)) = (&audit_cp, self.pw.as_mut()) {
            let alg = self.perm.command_audit_alg();
            let rp = area::rp_hash(alg, cc, &params);
            p.command_audit_digest =
                crate::crypto::digest(alg, &[&p.command_audit_digest, cp, &rp]);
        }

        // Exclusivity (Part 1 "Exclusive Audit Sessions"): a session's first
        // audit or an auditReset makes it the exclusive one; a successful
        // command it does not audit ends that. Failed commands change nothing
        // (libtpms).
        let audit = uses.iter().find(|u| u.audit_cp.is_some());
        if let Some(p) = self.pw.as_mut() {
            match audit.and_then(|u| p.sessions.get_mut(u.cmd.handle).map(|s| (u, s))) {
                Some((u, s)) => {
                    if u.cmd.attrs & AUDIT_RESET != 0 || s.audit_digest.is_empty() {
                        s.audit_digest = crate::marshal::Buffer(vec![0; s.digest_len()]);
                        p.exclusive_audit = u.cmd.handle;
                    }
                    if p.exclusive_audit != u.cmd.handle {
                        p.exclusive_audit = 0;
                    }
                }
                None => p.exclusive_audit = 0,
            }
        }
        let exclusive = self.pw.as_ref().map_or(0, |p| p.exclusive_audit);

        let mut out = Vec::with_capacity(params.len() + 64);
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&0u32.to_be_bytes());
        if def.r_handle {
            out.extend_from_slice(&resp.handle.unwrap_or(0).to_be_bytes());
        }
        if tag == c::ST_SESSIONS {
            marshal_u32_sized(&mut out, |w| w.extend_from_slice(&params));
            for (u, nonce) in uses.iter().zip(new_nonces) {
                let live = self
                    .pw
                    .as_mut()
                    .and_then(|p| p.sessions.get_mut(u.cmd.handle));
                match (live, nonce) {
                    (Some(s), Some(nonce)) => {
                        let rp = area::rp_hash(s.auth_hash, cc, &params);
                        let mut attrs = u.cmd.attrs;
                        if let Some(cp) = &u.audit_cp {
                            s.audit_digest = crate::marshal::Buffer(crate::crypto::digest(
                                s.auth_hash,
                                &[&s.audit_digest.0, cp, &rp],
                            ));
                            // The response says whether the session is (still) exclusive.
                            attrs &= !AUDIT_EXCLUSIVE;
                            if exclusive == u.cmd.handle {
                                attrs |= AUDIT_EXCLUSIVE;
                            }
                        }
                        let password = s.is_policy() && s.password_needed;
                        if s.is_policy() && u.entity.is_some() {
                            // A policy is spent by the authorization it gave.
                            s.reset_policy();
                        }
                        let hmac = if password {
                            Vec::new()
                        } else {
                            area::session_hmac(
                                s.auth_hash,
                                &u.key,
                                &rp,
                                &nonce,
                                &u.cmd.nonce,
                                &[],
                                attrs,
                            )
                        };
                        s.nonce_tpm.0.clone_from(&nonce);
                        area::marshal_auth_response(&mut out, &nonce, attrs, &hmac);
                    }
                    _ => area::marshal_auth_response(&mut out, &[], CONTINUE_SESSION, &[]),
                }
                if u.cmd.attrs & CONTINUE_SESSION == 0 && u.cmd.handle != c::RS_PW {
                    if let Some(p) = self.pw.as_mut() {
                        p.sessions.remove(u.cmd.handle);
                        // A later session may get the same handle; it is not exclusive.
                        if p.exclusive_audit == u.cmd.handle {
                            p.exclusive_audit = 0;
                        }
                    }
                }
            }
        } else {
            out.extend_from_slice(&params);
        }
        let len = out.len() as u32;
        out[2..6].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }
}
