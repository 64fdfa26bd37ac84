//! The key hierarchy (format-spec §3): one random master key per repository, from which
//! independent subkeys are derived with BLAKE3 `derive_key` and fixed context strings.

use zeroize::Zeroizing;

use super::aead::SealKey;
use crate::chunker::ChunkDigest;
use crate::id::{BlobKind, Id};

/// Context strings; changing any of them is a format break.
pub const CTX_CHUNK_ID: &str = "backup-to-s3 v1 chunk id";
pub const CTX_CHUNKER_SEED: &str = "backup-to-s3 v1 chunker seed";
pub const CTX_DATA_SEAL: &str = "backup-to-s3 v1 data seal";
pub const CTX_META_SEAL: &str = "backup-to-s3 v1 metadata seal";
pub const CTX_SNAPSHOT_SIGN: &str = "backup-to-s3 v1 snapshot signature";

/// The repository master key. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        super::fill_random(&mut *k);
        MasterKey(k)
    }
    pub fn from_bytes(b: [u8; 32]) -> Self {
        MasterKey(Zeroizing::new(b))
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    fn derive(&self, ctx: &str) -> [u8; 32] {
        blake3::derive_key(ctx, &*self.0)
    }
    pub fn subkeys(&self) -> SubKeys {
        let seed = self.derive(CTX_CHUNKER_SEED);
        let mut seed8 = [0u8; 8];
        seed8.copy_from_slice(&seed[..8]);
        SubKeys {
            chunk_id: Zeroizing::new(self.derive(CTX_CHUNK_ID)),
            chunker_seed: u64::from_le_bytes(seed8),
            data: SealKey::from_bytes(self.derive(CTX_DATA_SEAL)),
            meta: SealKey::from_bytes(self.derive(CTX_META_SEAL)),
            signing: Zeroizing::new(self.derive(CTX_SNAPSHOT_SIGN)),
        }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Keys with one purpose each, so a later put-only key can carry only some of them.
#[derive(Clone)]
pub struct SubKeys {
    /// Keys the BLAKE3 hash that names chunks and trees (deduplication).
    pub chunk_id: Zeroizing<[u8; 32]>,
    /// XORed into fastcdc's gear table so cut points do not reveal file contents.
    pub chunker_seed: u64,
    /// Seals data blobs.
    pub data: SealKey,
    /// Seals tree blobs, pack headers, index objects, snapshots and the config.
    pub meta: SealKey,
    /// Reserved for signed snapshot manifests (format-spec §8, not used in v1).
    pub signing: Zeroizing<[u8; 32]>,
}

/// A blob's id computed from its plaintext in pieces (`SubKeys::blob_hasher`).
pub struct BlobHasher(blake3::Hasher);

impl ChunkDigest for BlobHasher {
    type Output = Id;
    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&mut self) -> Id {
        let id = Id(*self.0.finalize().as_bytes());
        self.0.reset();
        id
    }
}

impl std::fmt::Debug for SubKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubKeys(..)")
    }
}

impl SubKeys {
    /// The id of a blob: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.chunk_id, plaintext).as_bytes())
    }

    /// `blob_id` fed in pieces, for the chunker to hash a chunk while it looks for its end.
    pub fn blob_hasher(&self) -> BlobHasher {
        BlobHasher(blake3::Hasher::new_keyed(&self.chunk_id))
    }

    pub fn seal_key(&self, kind: BlobKind) -> &SealKey {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.meta,
        }
    }
}
