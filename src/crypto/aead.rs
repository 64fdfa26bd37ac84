//! XChaCha20-Poly1305 sealing: `nonce (24) ‖ ciphertext ‖ tag (16)`, with associated data that
//! binds every sealed object to its context (format-spec §4).
//!
//! XChaCha20-Poly1305 is HChaCha20 (key, nonce[..16]) → a subkey, then the IETF
//! ChaCha20-Poly1305 of RFC 8439 under that subkey with the nonce `0⁴ ‖ nonce[16..]`. The
//! subkey comes from the `chacha20` crate and the bulk from `ring`, whose assembly seals about
//! twice as fast as the portable RustCrypto code; the bytes are the same (a test compares them).

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
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
    /// The RFC 8439 key and nonce that XChaCha20-Poly1305 under `nonce` amounts to.
    fn cipher(&self, nonce: &[u8; NONCE_LEN]) -> Option<(LessSafeKey, Nonce)> {
        let (prefix, suffix) = nonce.split_at(16);
        let prefix: [u8; 16] = prefix.try_into().ok()?;
        let subkey = Zeroizing::new(<[u8; 32]>::from(chacha20::hchacha::<chacha20::R20>(
            &(*self.0).into(),
            &prefix.into(),
        )));
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &subkey[..]).ok()?);
        let mut ietf = [0u8; 12];
        ietf[4..].copy_from_slice(suffix);
        Some((key, Nonce::assume_unique_for_key(ietf)))
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
    let sealed = key.cipher(nonce).and_then(|(cipher, nonce)| {
        cipher
            .seal_in_place_separate_tag(nonce, Aad::from(aad), plaintext)
            .ok()
    });
    match sealed {
        Some(tag) => buf.extend_from_slice(tag.as_ref()),
        None => buf.truncate(NONCE_LEN),
    }
}

/// Open a sealed object; any modification, wrong key or wrong context fails authentication.
pub fn open(key: &SealKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = sealed.to_vec();
    let plaintext = open_in_place(key, aad, &mut buf)?.len();
    buf.truncate(NONCE_LEN + plaintext);
    buf.drain(..NONCE_LEN);
    Ok(buf)
}

/// Open a sealed object where it lies: the ciphertext is authenticated, then decrypted in place;
/// returns the plaintext, a sub-slice of `sealed`. Restore opens thousands of blobs straight
/// out of the pack bytes it reads, without a copy per blob. When authentication fails, the
/// ciphertext is overwritten with zeros: a caller that may try again opens a copy.
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
    let (cipher, nonce) = key.cipher(&nonce).ok_or(CryptoError::Authentication)?;
    cipher
        .open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(tag), ct, 0..)
        .map_err(|_| CryptoError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};

    /// The same bytes as the portable XChaCha20-Poly1305, at lengths around ChaCha's 64-byte
    /// blocks and the assembly's wider strides, and both ways round.
    #[test]
    fn matches_the_portable_xchacha20poly1305() {
        let key_bytes: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
        let key = SealKey::from_bytes(key_bytes);
        let reference = XChaCha20Poly1305::new(&key_bytes.into());
        for (round, len) in [0, 1, 15, 16, 63, 64, 65, 255, 256, 257, 1000, 4096, 70_001]
            .into_iter()
            .enumerate()
        {
            let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| (i * 13 + round) as u8);
            let aad = vec![round as u8; round * 5];
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + round) as u8).collect();
            let ours = seal_with_nonce(&key, &nonce, &aad, &plain);
            let theirs = reference
                .encrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: &plain,
                        aad: &aad,
                    },
                )
                .expect("portable seal");
            assert_eq!(ours[..NONCE_LEN], nonce);
            assert_eq!(ours[NONCE_LEN..], theirs[..], "length {len}");
            assert_eq!(open(&key, &aad, &ours).expect("open"), plain);
        }
    }

    #[test]
    fn a_flipped_bit_fails_and_leaves_no_plaintext() {
        let key = SealKey::from_bytes([9; 32]);
        let plain = vec![0x5a; 300];
        let sealed = seal(&key, b"ctx", &plain);
        for at in [0, NONCE_LEN, NONCE_LEN + 150, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x10;
            assert!(open(&key, b"ctx", &bad).is_err(), "flip at {at}");
            assert!(open_in_place(&key, b"ctx", &mut bad).is_err());
            assert!(!bad.windows(16).any(|w| w == &plain[..16]));
        }
        assert!(open(&key, b"other", &sealed).is_err());
        assert!(open(&key, b"ctx", &sealed[..OVERHEAD - 1]).is_err());
    }
}
