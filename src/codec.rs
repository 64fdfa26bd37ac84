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
    /// A copy of a sealed blob to authenticate in place (`Codec::authenticates`).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
        let mut buf = sealed.to_vec();
        let mut scratch = Vec::new();
        Ok(match self.open_parts(kind, id, &mut buf, &mut scratch)? {
            Opened::Stored(range) => {
                // Drop the header in place rather than copying the body.
                buf.truncate(range.end);
                buf.drain(..range.start);
                buf
            }
            Opened::Decompressed => scratch,
        })
    }

    /// `open` without copies: decrypts `sealed` where it lies and decompresses into `scratch`
    /// (reused between calls); returns the verified plaintext, in one or the other.
    pub fn open_in_place<'a>(
        &self,
        kind: BlobKind,
        id: &Id,
        sealed: &'a mut [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], Error> {
        Ok(match self.open_parts(kind, id, sealed, scratch)? {
            Opened::Stored(range) => &sealed[range],
            Opened::Decompressed => &scratch[..],
        })
    }

    /// Whether a sealed blob is intact: it authenticates under its kind and id (the seal binds
    /// both, so it is the blob the index names). Cheaper than `open`: nothing is
    /// decompressed or hashed. For copying blobs that are kept as they are (prune's repack).
    pub fn authenticates(&self, kind: BlobKind, id: &Id, sealed: &[u8]) -> bool {
        SCRATCH.with(|cell| {
            let copy = &mut *cell.borrow_mut();
            copy.clear();
            // Exactly the blob: growing by doubling kept up to twice the largest blob per thread.
            copy.reserve_exact(sealed.len());
            copy.extend_from_slice(sealed);
            crypto::aead::open_in_place(self.keys.seal_key(kind), &blob_aad(kind, id), copy).is_ok()
        })
    }

    fn open_parts(
        &self,
        kind: BlobKind,
        id: &Id,
        sealed: &mut [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<Opened, Error> {
        let payload =
            crypto::aead::open_in_place(self.keys.seal_key(kind), &blob_aad(kind, id), sealed)
                .map_err(|_| Error::damaged("blob", id.to_hex(), "authentication failed"))?;
        let limit = match kind {
            BlobKind::Data => MAX_DATA_BLOB,
            BlobKind::Tree => MAX_TREE_BLOB,
        };
        let (opened, plain) = match payload.first() {
            Some(&COMPRESSION_NONE) => {
                let range = crypto::NONCE_LEN + 1..crypto::NONCE_LEN + payload.len();
                (Opened::Stored(range), &payload[1..])
            }
            Some(&COMPRESSION_ZSTD) => {
                decompress_into(&payload[1..], limit, scratch)?;
                (Opened::Decompressed, &scratch[..])
            }
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
        if self.keys.blob_id(plain) != *id {
            return Err(Error::damaged(
                "blob",
                id.to_hex(),
                "content does not match its id",
            ));
        }
        Ok(opened)
    }
}

/// Where `Codec::open_parts` left a blob's plaintext.
enum Opened {
    /// Stored uncompressed: this range of the sealed buffer.
    Stored(std::ops::Range<usize>),
    /// In the scratch buffer.
    Decompressed,
}

/// Decompress a zstd frame whose declared size is within `limit` into `out` (replacing its
/// contents); never allocates more than that, and fails unless the frame holds exactly it.
fn decompress_into(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Error> {
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
    out.clear();
    out.reserve_exact(declared as usize);
    let n = DECOMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            let d = match &mut *slot {
                Some(d) => d,
                empty => empty.insert(zstd::bulk::Decompressor::new()?),
            };
            // Writes at most `out`'s capacity, which may exceed `declared` when it is reused.
            d.decompress_to_buffer(body, out)
        })
        .map_err(|e| FormatError::malformed("blob", format!("zstd: {e}")))?;
    if n as u64 != declared {
        return Err(
            FormatError::malformed("blob", "zstd frame size differs from its header").into(),
        );
    }
    Ok(())
}
