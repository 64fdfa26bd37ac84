//! XChaCha20-Poly1305 sealing: `nonce (24) ‖ ciphertext ‖ tag (16)`, with associated data that
//! binds every sealed object to its context (format-spec §4).

use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::CryptoError;

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A 256-bit AEAD key, zeroized on drop and never printed.
#[derive(Clone)]
pub struct SealKey(Zeroizing<[u8; 32]>);

impl SealKey {
    pub fn from_bytes(b: [u8; 32]) -> Self {
        SealKey(Zeroizing::new(b))
    }
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.0).into())
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// Seal `plaintext` under `key` with a fresh random nonce.
pub fn seal(key: &SealKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    super::fill_random(&mut nonce);
    seal_with_nonce(key, &nonce, aad, plaintext)
}

/// Seal with a given nonce: only for test vectors, which need to be reproducible.
pub fn seal_with_nonce(
    key: &SealKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    seal_in_place(key, nonce, aad, &mut out);
    out
}

/// Seal `buf` = `nonce ‖ plaintext` where it lies: the plaintext is encrypted in place and the
/// tag appended, giving the same bytes as `seal_with_nonce` without a second buffer (blobs are
/// compressed straight into the buffer they are sealed in). `buf` must start with `nonce`.
pub fn seal_in_place(key: &SealKey, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) {
    let Some(plaintext) = buf.get_mut(NONCE_LEN..) else {
        return;
    };
    // Encryption fails only for messages beyond 256 GiB, which no caller can produce; the
    // ciphertext is then left out, as an empty one (authentication of it fails).
    match key
        .cipher()
        .encrypt_inout_detached(&XNonce::from(*nonce), aad, plaintext.into())
    {
        Ok(tag) => buf.extend_from_slice(&tag),
        Err(_) => buf.truncate(NONCE_LEN),
    }
}

/// Open a sealed object; any modification, wrong key or wrong context fails authentication.
pub fn open(key: &SealKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < OVERHEAD {
        return Err(CryptoError::Authentication);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Authentication)?;
    key.cipher()
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Authentication)
}

/// Open a sealed object where it lies: the ciphertext is authenticated, then decrypted in place;
/// returns the plaintext, a sub-slice of `sealed`. Restore opens thousands of blobs straight
/// out of the pack bytes it reads, without a copy per blob.
pub fn open_in_place<'a>(
    key: &SealKey,
    aad: &[u8],
    sealed: &'a mut [u8],
) -> Result<&'a mut [u8], CryptoError> {
    if sealed.len() < OVERHEAD {
        return Err(CryptoError::Authentication);
    }
    let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
    let (ct, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = (&*nonce)
        .try_into()
        .map_err(|_| CryptoError::Authentication)?;
    let tag: [u8; TAG_LEN] = (&*tag)
        .try_into()
        .map_err(|_| CryptoError::Authentication)?;
    key.cipher()
        .decrypt_inout_detached(&XNonce::from(nonce), aad, ct.into(), &tag.into())
        .map_err(|_| CryptoError::Authentication)?;
    Ok(ct)
}
