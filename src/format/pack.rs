//! Pack files (format-spec §5): `blob* ‖ sealed header ‖ u32 LE header length ‖ "B2S3PAK1"`.
//! The sealed header lists every blob (kind, id, stored length, raw length) in storage order, so
//! packs are self-describing and the index can always be rebuilt from them.

use super::{blob::AAD_PACK_HEADER, Reader, MAX_PACK_ENTRIES};
use crate::crypto::{self, SealKey};
use crate::error::{Error, FormatError};
use crate::id::{BlobKind, Id};

pub const PACK_MAGIC: &[u8; 8] = b"B2S3PAK1";
pub const TRAILER_LEN: usize = 4 + 8;
/// Bytes per header entry: kind (1), id (32), stored length (4), raw length (4).
pub const HEADER_ENTRY_LEN: usize = 41;
/// Largest sealed header a reader accepts.
pub const MAX_HEADER_LEN: usize = 4 + MAX_PACK_ENTRIES * HEADER_ENTRY_LEN + crypto::aead::OVERHEAD;

/// One blob of a pack, with its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: Id,
    pub offset: u32,
    /// Stored (sealed) length.
    pub length: u32,
    /// Plaintext length after decompression.
    pub raw_length: u32,
}

/// The entries of a pack being written, and the bytes that close it: the blobs themselves go
/// wherever the writer puts them (a buffer, or straight to storage), in the order added.
#[derive(Default)]
pub struct PackLayout {
    entries: Vec<PackEntry>,
    data_len: u64,
}

impl PackLayout {
    pub fn new() -> Self {
        Self::default()
    }
    /// Bytes of the blobs so far.
    pub fn len(&self) -> u64 {
        self.data_len
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn count(&self) -> usize {
        self.entries.len()
    }
    /// Record the next blob, stored right after the previous one.
    pub fn add(&mut self, kind: BlobKind, id: Id, length: usize, raw_length: u32) {
        self.entries.push(PackEntry {
            kind,
            id,
            offset: self.data_len as u32,
            length: length as u32,
            raw_length,
        });
        self.data_len += length as u64;
    }
    /// What follows the blobs: the sealed header and the trailer.
    pub fn tail(&self, key: &SealKey) -> Vec<u8> {
        let header = crypto::seal(key, AAD_PACK_HEADER, &encode_header(&self.entries));
        let mut out = Vec::with_capacity(header.len() + TRAILER_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(PACK_MAGIC);
        out
    }
    pub fn into_entries(self) -> Vec<PackEntry> {
        self.entries
    }
}

/// Assembles a pack in memory.
#[derive(Default)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    layout: PackLayout,
}

impl PackBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layout.is_empty()
    }
    pub fn count(&self) -> usize {
        self.layout.count()
    }
    pub fn add(&mut self, kind: BlobKind, id: Id, sealed: &[u8], raw_length: u32) {
        self.layout.add(kind, id, sealed.len(), raw_length);
        self.bytes.extend_from_slice(sealed);
    }

    /// Append the sealed header and trailer; returns the pack bytes and its entries.
    pub fn finish(mut self, key: &SealKey) -> (Vec<u8>, Vec<PackEntry>) {
        self.bytes.extend_from_slice(&self.layout.tail(key));
        (self.bytes, self.layout.into_entries())
    }
}

pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * HEADER_ENTRY_LEN);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.push(e.kind as u8);
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_length.to_le_bytes());
    }
    out
}

/// Decode a header's plaintext; offsets follow from the lengths, and must fit before `data_end`.
pub fn decode_header(plain: &[u8], data_end: u64) -> Result<Vec<PackEntry>, FormatError> {
    // Offsets are u32 (format-spec §5 rule 7); a larger data section would wrap them.
    if data_end > u64::from(u32::MAX) {
        return Err(FormatError::malformed(
            "pack header",
            "data section larger than 4 GiB",
        ));
    }
    let mut r = Reader::new("pack header", plain);
    let n = r.count(MAX_PACK_ENTRIES, HEADER_ENTRY_LEN)?;
    let mut entries = Vec::with_capacity(n);
    let mut offset: u64 = 0;
    for _ in 0..n {
        let kind = BlobKind::from_u8(r.u8()?)
            .ok_or_else(|| FormatError::malformed("pack header", "unknown blob kind"))?;
        let id = r.id()?;
        let length = r.u32()?;
        let raw_length = r.u32()?;
        if (length as usize) < crypto::aead::OVERHEAD + 1 {
            return Err(FormatError::malformed(
                "pack header",
                "blob shorter than its seal",
            ));
        }
        if offset + u64::from(length) > data_end {
            return Err(FormatError::malformed(
                "pack header",
                "blob extends past the data section",
            ));
        }
        entries.push(PackEntry {
            kind,
            id,
            offset: offset as u32,
            length,
            raw_length,
        });
        offset += u64::from(length);
    }
    r.finish()?;
    if offset != data_end {
        return Err(FormatError::malformed(
            "pack header",
            "blobs do not cover the data section",
        ));
    }
    Ok(entries)
}

/// Parse a pack trailer (its last 12 bytes): the sealed header's length.
pub fn parse_trailer(trailer: &[u8], pack_len: u64) -> Result<u32, FormatError> {
    if trailer.len() != TRAILER_LEN || pack_len < TRAILER_LEN as u64 {
        return Err(FormatError::Truncated {
            what: "pack",
            need: TRAILER_LEN,
            have: trailer.len(),
        });
    }
    if &trailer[4..] != PACK_MAGIC {
        return Err(FormatError::BadMagic { what: "pack" });
    }
    let header_len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if header_len as usize > MAX_HEADER_LEN || u64::from(header_len) + TRAILER_LEN as u64 > pack_len
    {
        return Err(FormatError::malformed("pack", "header length out of range"));
    }
    Ok(header_len)
}

/// Read the entries of a complete pack held in memory.
pub fn read_entries(pack: &[u8], key: &SealKey) -> Result<Vec<PackEntry>, Error> {
    let len = pack.len();
    let tail = pack
        .get(len.saturating_sub(TRAILER_LEN)..)
        .unwrap_or_default();
    let header_len = parse_trailer(tail, len as u64)? as usize;
    let header_start = len - TRAILER_LEN - header_len;
    let plain = crypto::open(key, AAD_PACK_HEADER, &pack[header_start..len - TRAILER_LEN])?;
    Ok(decode_header(&plain, header_start as u64)?)
}

/// Decode a sealed header read separately (e.g. with a ranged GET) from a pack of `pack_len` bytes.
pub fn open_header(sealed: &[u8], pack_len: u64, key: &SealKey) -> Result<Vec<PackEntry>, Error> {
    let data_end = pack_len
        .checked_sub(TRAILER_LEN as u64 + sealed.len() as u64)
        .ok_or_else(|| FormatError::malformed("pack", "header longer than the pack"))?;
    let plain = crypto::open(key, AAD_PACK_HEADER, sealed)?;
    Ok(decode_header(&plain, data_end)?)
}
