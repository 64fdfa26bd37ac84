//! Index objects (format-spec §6): sealed lists of packs and the blobs they hold, plus the
//! index objects they supersede (written by prune). Many may exist; their union is the index.

use super::{blob::AAD_INDEX, Reader, MAX_INDEX_OBJECT, MAX_PACK_ENTRIES};
use crate::crypto::{self, SealKey};
use crate::error::{Error, FormatError};
use crate::format::pack::PackEntry;
use crate::id::{BlobKind, Id};

/// Bytes per blob entry: kind (1), id (32), offset (4), length (4), raw length (4).
pub const INDEX_ENTRY_LEN: usize = 45;
const MAX_PACKS: usize = 1 << 22;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    pub pack: Id,
    pub entries: Vec<PackEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexObject {
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexPack>,
}

impl IndexObject {
    pub fn encode_plain(&self) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.entries.len()).sum();
        let mut out = Vec::with_capacity(
            9 + self.supersedes.len() * 32 + self.packs.len() * 36 + blobs * INDEX_ENTRY_LEN,
        );
        out.push(super::FORMAT_VERSION);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for id in &self.supersedes {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.pack.0);
            out.extend_from_slice(&(p.entries.len() as u32).to_le_bytes());
            for e in &p.entries {
                out.push(e.kind as u8);
                out.extend_from_slice(&e.id.0);
                out.extend_from_slice(&e.offset.to_le_bytes());
                out.extend_from_slice(&e.length.to_le_bytes());
                out.extend_from_slice(&e.raw_length.to_le_bytes());
            }
        }
        out
    }

    pub fn decode_plain(plain: &[u8]) -> Result<IndexObject, FormatError> {
        let mut r = Reader::new("index", plain);
        let version = r.u8()?;
        if version != super::FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "index",
                version: version.into(),
            });
        }
        let n_sup = r.count(MAX_PACKS, 32)?;
        let supersedes = (0..n_sup).map(|_| r.id()).collect::<Result<Vec<_>, _>>()?;
        let n_packs = r.count(MAX_PACKS, 36)?;
        let mut packs = Vec::with_capacity(n_packs);
        for _ in 0..n_packs {
            let pack = r.id()?;
            let n = r.count(MAX_PACK_ENTRIES, INDEX_ENTRY_LEN)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let kind = BlobKind::from_u8(r.u8()?)
                    .ok_or_else(|| FormatError::malformed("index", "unknown blob kind"))?;
                let id = r.id()?;
                let offset = r.u32()?;
                let length = r.u32()?;
                let raw_length = r.u32()?;
                if offset.checked_add(length).is_none() {
                    return Err(FormatError::malformed("index", "blob range overflows"));
                }
                entries.push(PackEntry {
                    kind,
                    id,
                    offset,
                    length,
                    raw_length,
                });
            }
            packs.push(IndexPack { pack, entries });
        }
        r.finish()?;
        Ok(IndexObject { supersedes, packs })
    }

    pub fn encode(&self, key: &SealKey) -> Vec<u8> {
        crypto::seal(key, AAD_INDEX, &self.encode_plain())
    }

    pub fn decode(sealed: &[u8], key: &SealKey) -> Result<IndexObject, Error> {
        if sealed.len() > MAX_INDEX_OBJECT {
            return Err(FormatError::TooLarge {
                what: "index",
                count: sealed.len() as u64,
                limit: MAX_INDEX_OBJECT as u64,
            }
            .into());
        }
        let plain = crypto::open(key, AAD_INDEX, sealed)?;
        Ok(Self::decode_plain(&plain)?)
    }
}
