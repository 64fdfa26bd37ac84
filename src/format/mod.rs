//! Byte-level encoding of every persisted structure (format-spec §2–§8), with the limits that
//! bound what a decoder may allocate. Decoders take untrusted bytes and never panic.

pub mod blob;
pub mod config;
pub mod gc;
pub mod index;
pub mod keyfile;
pub mod pack;
pub mod snapshot;
pub mod tree;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::FormatError;

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Largest plaintext of a data blob (fastcdc's largest maximum chunk size).
pub const MAX_DATA_BLOB: usize = 16 << 20;
/// Largest plaintext of a tree blob.
pub const MAX_TREE_BLOB: usize = 64 << 20;
/// Largest number of blobs one pack may hold.
pub const MAX_PACK_ENTRIES: usize = 1 << 20;
/// Largest index object (sealed bytes).
pub const MAX_INDEX_OBJECT: usize = 256 << 20;
/// Largest snapshot object (sealed bytes).
pub const MAX_SNAPSHOT_OBJECT: usize = 16 << 20;
/// Largest config or key file.
pub const MAX_SMALL_OBJECT: usize = 64 << 10;

/// bincode 2 "standard" configuration: little-endian, variable-length integers (format-spec §2.2).
fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encode `value` as `version byte ‖ bincode(value)`.
pub(crate) fn encode_versioned<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Encoding into a Vec cannot fail for our plain data types.
    out.extend(bincode::serde::encode_to_vec(value, bincode_config()).unwrap_or_default());
    out
}

/// Decode `version byte ‖ bincode(value)`, rejecting other versions, oversize input and trailing bytes.
pub(crate) fn decode_versioned<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<T, FormatError> {
    if bytes.len() > limit {
        return Err(FormatError::TooLarge {
            what,
            count: bytes.len() as u64,
            limit: limit as u64,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(FormatError::Truncated {
        what,
        need: 1,
        have: 0,
    })?;
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what,
            version: version.into(),
        });
    }
    // The byte limit also caps every container bincode pre-allocates while decoding.
    let config = bincode_config().with_limit::<{ MAX_TREE_BLOB }>();
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(body, config)
        .map_err(|e| FormatError::malformed(what, e.to_string()))?;
    if used != body.len() {
        return Err(FormatError::malformed(
            what,
            format!("{} trailing bytes", body.len() - used),
        ));
    }
    Ok(value)
}

/// A cursor over untrusted bytes for the fixed-width structures (pack headers, index objects).
pub(crate) struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Reader { what, buf }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.buf.len() < n {
            return Err(FormatError::Truncated {
                what: self.what,
                need: n,
                have: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn id(&mut self) -> Result<crate::Id, FormatError> {
        crate::Id::from_slice(self.take(32)?).ok_or(FormatError::Truncated {
            what: self.what,
            need: 32,
            have: 0,
        })
    }
    /// A count that is checked against a limit and against the bytes left (each item ≥ `item_len`).
    pub fn count(&mut self, limit: usize, item_len: usize) -> Result<usize, FormatError> {
        let n = self.u32()? as usize;
        if n > limit {
            return Err(FormatError::TooLarge {
                what: self.what,
                count: n as u64,
                limit: limit as u64,
            });
        }
        let need = n.saturating_mul(item_len);
        if need > self.buf.len() {
            return Err(FormatError::Truncated {
                what: self.what,
                need,
                have: self.buf.len(),
            });
        }
        Ok(n)
    }
    pub fn finish(self) -> Result<(), FormatError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FormatError::malformed(
                self.what,
                format!("{} trailing bytes", self.buf.len()),
            ))
        }
    }
}
