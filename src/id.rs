//! 32-byte identifiers (format-spec §3): chunk/tree ids are keyed BLAKE3 of plaintext,
//! object names (packs, index, snapshots, keys) are plain BLAKE3 of the stored bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Id(pub [u8; 32]);

impl Id {
    pub const LEN: usize = 32;

    /// The name of a stored object: unkeyed BLAKE3 of its bytes, so the name verifies the object.
    /// `ObjectHasher` computes the same name from bytes given piece by piece.
    pub fn of_object(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_slice(b: &[u8]) -> Option<Id> {
        <[u8; 32]>::try_from(b).ok().map(Id)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The 8-hex-digit short form shown in tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn random() -> Id {
        let mut b = [0u8; 32];
        crate::crypto::fill_random(&mut b);
        Id(b)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// `Id::of_object` of bytes that arrive in pieces (a pack streamed to storage).
#[derive(Clone, Default)]
pub struct ObjectHasher(blake3::Hasher);

impl ObjectHasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    /// The id of everything given so far: equal to `Id::of_object` of the concatenation.
    pub fn finish(&self) -> Id {
        Id(*self.0.finalize().as_bytes())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid id {0:?}: expected 64 hex digits")]
pub struct ParseIdError(pub String);

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).map_err(|_| ParseIdError(s.to_string()))?;
        Ok(Id(b))
    }
}

/// What a blob holds; part of every blob's AAD and of pack header entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum BlobKind {
    Data = 0,
    Tree = 1,
}

impl BlobKind {
    pub fn from_u8(b: u8) -> Option<BlobKind> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_hasher_names_like_of_object() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for cuts in [&[][..], &[0, 1, 1024][..], &[65_535, 65_536, 200_001][..]] {
            let mut h = ObjectHasher::new();
            let mut at = 0;
            for &c in cuts {
                h.update(&bytes[at..c]);
                at = c;
            }
            h.update(&bytes[at..]);
            assert_eq!(h.finish(), Id::of_object(&bytes));
        }
        assert_eq!(ObjectHasher::new().finish(), Id::of_object(b""));
    }
}
