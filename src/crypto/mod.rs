//! Key hierarchy, password KDF, AEAD sealing with bound context, keyed BLAKE3 (format-spec §3–§4).

pub mod aead;
pub mod keys;

pub use aead::{open, seal, SealKey, NONCE_LEN, TAG_LEN};
pub use keys::{MasterKey, SubKeys};

/// Fill a buffer from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    // getrandom fails only when the OS has no entropy source at all; nothing safe can go on then.
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}
