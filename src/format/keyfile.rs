//! Key files (format-spec §3.2): JSON objects holding the master key sealed under a key derived
//! from a password with argon2id. The KDF parameters are stored in each file.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{blob::AAD_KEY, MAX_SMALL_OBJECT};
use crate::crypto::{self, MasterKey, SealKey};
use crate::error::{CryptoError, Error, FormatError};

/// What a key slot unlocks. v1 writes only `Full`; other kinds (put-only) are reserved.
pub const PAYLOAD_FULL: u8 = 1;
/// Length of the argon2id salt.
pub const SALT_LEN: usize = 32;
/// Length of the sealed payload: nonce, payload kind, master key, tag.
pub const SEALED_LEN: usize = crypto::aead::OVERHEAD + 1 + 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 16 MiB, 6 passes, 1 lane: about 0.1 s on a small server core. An attacker's cost per
    /// guess grows with memory × passes, and 16 × 6 equals the 32 × 3 this default had before
    /// (both are over twice OWASP's argon2id baseline of 19 MiB × 2 passes); the memory is also
    /// every command's memory floor, so it is spent on passes. `init --kdf-memory-mib` raises it.
    fn default() -> Self {
        KdfParams {
            m_cost: 16 * 1024,
            t_cost: 6,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Bounds a hostile key file could otherwise use to exhaust memory or time.
    fn validate(&self) -> Result<(), FormatError> {
        if self.m_cost < 8 * 1024
            || self.m_cost > 4 * 1024 * 1024
            || self.t_cost == 0
            || self.t_cost > 64
            || self.p_cost == 0
            || self.p_cost > 16
        {
            return Err(FormatError::malformed(
                "key",
                format!("KDF parameters out of bounds: {self:?}"),
            ));
        }
        Ok(())
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<SealKey, CryptoError> {
        let params = argon2::Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password, salt, &mut *out)
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        Ok(SealKey::from_bytes(*out))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    /// RFC 3339.
    pub created: String,
    pub hostname: String,
    pub username: String,
    /// Always "argon2id" in v1.
    pub kdf: String,
    pub kdf_params: KdfParams,
    /// 32 random bytes, hex.
    pub salt: String,
    /// `nonce ‖ AEAD(payload kind ‖ master key) ‖ tag`, hex.
    pub sealed: String,
}

impl KeyFile {
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        hostname: &str,
        username: &str,
    ) -> Result<KeyFile, Error> {
        params.validate()?;
        let mut salt = [0u8; 32];
        crypto::fill_random(&mut salt);
        let kek = params.derive(password, &salt)?;
        let mut payload = Zeroizing::new(Vec::with_capacity(33));
        payload.push(PAYLOAD_FULL);
        payload.extend_from_slice(master.as_bytes());
        Ok(KeyFile {
            version: 1,
            created: jiff::Timestamp::now().to_string(),
            hostname: hostname.to_string(),
            username: username.to_string(),
            kdf: "argon2id".to_string(),
            kdf_params: params,
            salt: hex::encode(salt),
            sealed: hex::encode(crypto::seal(&kek, AAD_KEY, &payload)),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyFile, FormatError> {
        if bytes.len() > MAX_SMALL_OBJECT {
            return Err(FormatError::TooLarge {
                what: "key",
                count: bytes.len() as u64,
                limit: MAX_SMALL_OBJECT as u64,
            });
        }
        let kf: KeyFile = serde_json::from_slice(bytes)
            .map_err(|e| FormatError::malformed("key", e.to_string()))?;
        if kf.version != 1 {
            return Err(FormatError::UnsupportedVersion {
                what: "key",
                version: kf.version,
            });
        }
        if kf.kdf != "argon2id" {
            return Err(FormatError::malformed(
                "key",
                format!("unknown KDF {:?}", kf.kdf),
            ));
        }
        kf.kdf_params.validate()?;
        // Fixed sizes (format-spec §3.2): 32-byte salt; nonce ‖ (kind ‖ 32-byte key) ‖ tag.
        if kf.salt.len() != 2 * SALT_LEN || !kf.salt.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FormatError::malformed("key", "salt is not 32 bytes of hex"));
        }
        if kf.sealed.len() != 2 * SEALED_LEN || !kf.sealed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FormatError::malformed(
                "key",
                "sealed key has the wrong length",
            ));
        }
        Ok(kf)
    }

    /// Unlock the master key; `WrongPassword` when the password does not fit this slot.
    pub fn unlock(&self, password: &[u8]) -> Result<MasterKey, Error> {
        let salt = hex::decode(&self.salt)
            .map_err(|_| FormatError::malformed("key", "salt is not hex"))?;
        let sealed = hex::decode(&self.sealed)
            .map_err(|_| FormatError::malformed("key", "sealed key is not hex"))?;
        let kek = self.kdf_params.derive(password, &salt)?;
        let payload = Zeroizing::new(
            crypto::open(&kek, AAD_KEY, &sealed).map_err(|_| CryptoError::WrongPassword)?,
        );
        match payload.split_first() {
            Some((&PAYLOAD_FULL, key)) if key.len() == 32 => {
                let mut b = [0u8; 32];
                b.copy_from_slice(key);
                Ok(MasterKey::from_bytes(b))
            }
            _ => Err(FormatError::malformed("key", "unknown key payload").into()),
        }
    }
}
