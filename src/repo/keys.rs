//! Key slots (format-spec §3.2): several passwords can open one repository; each key file holds
//! the master key sealed under its own argon2id-derived key.

use serde::Serialize;

use crate::backend::{Backend, Kind, Temperature};
use crate::crypto::MasterKey;
use crate::error::{CryptoError, Error, Result};
use crate::format::keyfile::{KdfParams, KeyFile};
use crate::id::Id;

/// Write a new key slot for `master`; returns its id.
pub fn write_key(
    backend: &dyn Backend,
    master: &MasterKey,
    password: &[u8],
    kdf: KdfParams,
) -> Result<Id> {
    let (host, user) = super::whoami();
    let bytes = KeyFile::create(master, password, kdf, &host, &user)?.encode();
    let id = Id::of_object(&bytes);
    backend.put(Kind::Key, &id.to_hex(), &bytes, Temperature::Hot)?;
    Ok(id)
}

/// Try the hinted key slot first (no LIST needed), then every slot; returns the master key
/// and the name of the slot that opened. `WrongPassword` when none opens.
pub fn unlock(
    backend: &dyn Backend,
    password: &[u8],
    hint: Option<&str>,
) -> Result<(MasterKey, String)> {
    if let Some(name) = hint {
        if let Ok(bytes) = backend.get(Kind::Key, name) {
            if let Ok(master) = KeyFile::decode(&bytes)
                .map_err(Error::from)
                .and_then(|kf| kf.unlock(password))
            {
                return Ok((master, name.to_string()));
            }
        }
    }
    let names = backend.list(Kind::Key)?;
    if names.is_empty() {
        return Err(Error::damaged(
            "key",
            "keys/",
            "the repository has no key files",
        ));
    }
    let mut last_err = None;
    for (name, _) in names {
        if Some(name.as_str()) == hint {
            continue;
        }
        let bytes = backend.get(Kind::Key, &name)?;
        match KeyFile::decode(&bytes)
            .map_err(Error::from)
            .and_then(|kf| kf.unlock(password))
        {
            Ok(master) => return Ok((master, name)),
            Err(Error::Crypto(CryptoError::WrongPassword)) => {}
            Err(e) => {
                tracing::warn!("key file {name}: {e}");
                last_err = Some(e);
            }
        }
    }
    match last_err {
        Some(e) if !matches!(e, Error::Crypto(_)) => Err(e),
        _ => Err(CryptoError::WrongPassword.into()),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created: String,
    pub hostname: String,
    pub username: String,
    pub kdf: String,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    /// Whether this is the slot the current password opened.
    pub current: bool,
}

impl super::Repository {
    pub fn list_keys(&self, password: &[u8]) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (name, _) in self.backend().list(Kind::Key)? {
            let bytes = self.backend().get(Kind::Key, &name)?;
            let kf = KeyFile::decode(&bytes)?;
            // Checking which slot is current costs one KDF per key: keep it to short lists.
            let current = out.len() < 16 && kf.unlock(password).is_ok();
            out.push(KeyInfo {
                id: name,
                created: kf.created,
                hostname: kf.hostname,
                username: kf.username,
                kdf: kf.kdf,
                m_cost_kib: kf.kdf_params.m_cost,
                t_cost: kf.kdf_params.t_cost,
                p_cost: kf.kdf_params.p_cost,
                current,
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    pub fn add_key(&self, new_password: &[u8], kdf: KdfParams) -> Result<Id> {
        write_key(self.backend(), self.master_key(), new_password, kdf)
    }

    /// Remove a key slot by id or unique prefix; the last slot can never be removed.
    pub fn remove_key(&self, spec: &str) -> Result<String> {
        let names: Vec<String> = self
            .backend()
            .list(Kind::Key)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let matching: Vec<&String> = names.iter().filter(|n| n.starts_with(spec)).collect();
        let name = match matching.as_slice() {
            [one] => (*one).clone(),
            [] => return Err(Error::Invalid(format!("no key {spec:?}"))),
            _ => return Err(Error::Invalid(format!("key prefix {spec:?} is ambiguous"))),
        };
        if names.len() == 1 {
            return Err(Error::Invalid(
                "refusing to remove the only key of the repository".into(),
            ));
        }
        self.backend().delete(Kind::Key, &name)?;
        Ok(name)
    }

    /// Change a password: add the new slot first, then remove the slot the old password opens.
    pub fn change_password(
        &self,
        old_password: &[u8],
        new_password: &[u8],
        kdf: KdfParams,
    ) -> Result<Id> {
        let new_id = self.add_key(new_password, kdf)?;
        for (name, _) in self.backend().list(Kind::Key)? {
            if name == new_id.to_hex() {
                continue;
            }
            let bytes = self.backend().get(Kind::Key, &name)?;
            if KeyFile::decode(&bytes).is_ok_and(|kf| kf.unlock(old_password).is_ok()) {
                self.backend().delete(Kind::Key, &name)?;
            }
        }
        Ok(new_id)
    }
}
