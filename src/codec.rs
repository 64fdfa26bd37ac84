//! A blob's life (format-spec §4): compress → seal on the way in; open → decompress → verify the
//! id on the way out. Nothing read from a repository is used before its id has been checked.

use std::cell::RefCell;

use crate::crypto::{self, SubKeys};
use crate::error::{Error, FormatError};
use crate::format::blob::{blob_aad, COMPRESSION_NONE, COMPRESSION_ZSTD};
use crate::format::{MAX_DATA_BLOB, MAX_TREE_BLOB};
use crate::id::{BlobKind, Id};

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    // A zstd context is ~100 KiB to set up; reading packs opens thousands of blobs per thread.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compress `plain` to the end of `out`, straight into its spare capacity; returns the
/// compressed length, or None (with `out` unchanged) when zstd fails or the room is too small.
fn compress_into(level: i32, plain: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let start = out.len();
    let n = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, c) = slot.as_mut()?;
        let mut cursor = std::io::Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        c.compress_to_buffer(plain, &mut cursor).ok()
    });
    if n.is_none() {
        out.truncate(start);
    }
    n
}

#[derive(Clone)]
pub struct Codec {
    keys: SubKeys,
    level: i32,
}

/// A blob ready to be packed.
pub struct SealedBlob {
    pub kind: BlobKind,
    pub id: Id,
    pub sealed: Vec<u8>,
    pub raw_length: u32,
}

impl Codec {
    pub fn new(keys: SubKeys, level: i32) -> Self {
        Codec { keys, level }
    }

    pub fn keys(&self) -> &SubKeys {
        &self.keys
    }

    pub fn id(&self, plain: &[u8]) -> Id {
        self.keys.blob_id(plain)
    }

    /// Compress (unless that does not shrink it) and seal a blob whose id is already known.
    pub fn seal(&self, kind: BlobKind, id: Id, plain: &[u8]) -> SealedBlob {
        let mut nonce = [0u8; crypto::NONCE_LEN];
        crypto::fill_random(&mut nonce);
        self.seal_with_nonce(kind, id, plain, &nonce)
    }

    /// `seal` with a given nonce: only for test vectors, which must be reproducible. A nonce
    /// MUST never be reused under the same key (format-spec §4.1).
    pub fn seal_with_nonce(
        &self,
        kind: BlobKind,
        id: Id,
        plain: &[u8],
        nonce: &[u8; crypto::NONCE_LEN],
    ) -> SealedBlob {
        // One buffer per blob: `nonce ‖ compression byte ‖ body`, compressed into and sealed in
        // place (format-spec §4.1), so sealing holds no copies of the chunk.
        let body = crypto::NONCE_LEN + 1;
        let room = zstd::zstd_safe::compress_bound(plain.len()).max(plain.len());
        let mut sealed = Vec::with_capacity(body + room + crypto::aead::TAG_LEN);
        sealed.extend_from_slice(nonce);
        sealed.push(COMPRESSION_ZSTD);
        let compressed = self.level > 0
            && compress_into(self.level, plain, &mut sealed).is_some_and(|n| n < plain.len());
        if !compressed {
            sealed.truncate(crypto::NONCE_LEN);
            sealed.push(COMPRESSION_NONE);
            sealed.extend_from_slice(plain);
        }
        crypto::aead::seal_in_place(
            self.keys.seal_key(kind),
            nonce,
            &blob_aad(kind, &id),
            &mut sealed,
        );
        SealedBlob {
            kind,
            id,
            sealed,
            raw_length: plain.len() as u32,
        }
    }

    /// Open a sealed blob, decompress it within the size limit of its kind and verify its id.
    pub fn open(&self, kind: BlobKind, id: &Id, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let payload = crypto::open(self.keys.seal_key(kind), &blob_aad(kind, id), sealed)
            .map_err(|_| Error::damaged("blob", id.to_hex(), "authentication failed"))?;
        let limit = match kind {
            BlobKind::Data => MAX_DATA_BLOB,
            BlobKind::Tree => MAX_TREE_BLOB,
        };
        let plain = match payload.first() {
            Some(&COMPRESSION_NONE) => {
                // Drop the header byte in place rather than copying the body.
                let mut body = payload;
                body.remove(0);
                body
            }
            Some(&COMPRESSION_ZSTD) => decompress(&payload[1..], limit)?,
            _ => return Err(FormatError::malformed("blob", "unknown compression").into()),
        };
        if plain.len() > limit {
            return Err(FormatError::TooLarge {
                what: "blob",
                count: plain.len() as u64,
                limit: limit as u64,
            }
            .into());
        }
        if self.keys.blob_id(&plain) != *id {
            return Err(Error::damaged(
                "blob",
                id.to_hex(),
                "content does not match its id",
            ));
        }
        Ok(plain)
    }
}

/// Decompress a zstd frame whose declared size is within `limit`; never allocates more.
fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let declared = zstd::zstd_safe::get_frame_content_size(body)
        .ok()
        .flatten()
        .ok_or_else(|| FormatError::malformed("blob", "zstd frame without a content size"))?;
    if declared > limit as u64 {
        return Err(FormatError::TooLarge {
            what: "blob",
            count: declared,
            limit: limit as u64,
        }
        .into());
    }
    DECOMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            let d = match &mut *slot {
                Some(d) => d,
                empty => empty.insert(zstd::bulk::Decompressor::new()?),
            };
            // Allocates `declared` bytes, and fails if the frames hold more.
            d.decompress(body, declared as usize)
        })
        .map_err(|e| FormatError::malformed("blob", format!("zstd: {e}")).into())
}
