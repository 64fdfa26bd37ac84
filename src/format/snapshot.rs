//! Snapshot manifests (format-spec §8): small sealed objects naming a root tree, written last.

use serde::{Deserialize, Serialize};

use super::{blob::AAD_SNAPSHOT, decode_versioned, encode_versioned, MAX_SNAPSHOT_OBJECT};
use crate::crypto::{self, SealKey};
use crate::error::{Error, FormatError};
use crate::id::Id;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub data_added: u64,
    pub chunks_new: u64,
    pub chunks_deduplicated: u64,
    pub files_unreadable: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Unix time in nanoseconds (UTC).
    pub time_ns: i64,
    /// The writer's UTC offset in seconds, for display in its local time.
    pub tz_offset_s: i32,
    pub hostname: String,
    pub username: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub parent: Option<Id>,
    pub tree: Id,
    /// When this manifest replaces another (tags changed), the id of the first one.
    pub original: Option<Id>,
    pub program_version: String,
    pub summary: Option<SnapshotSummary>,
    /// Reserved: a signature over the manifest (format-spec §8.3). Empty in v1.
    pub signature: Vec<u8>,
}

impl Snapshot {
    pub fn encode(&self, key: &SealKey) -> Vec<u8> {
        crypto::seal(key, AAD_SNAPSHOT, &self.encode_plain())
    }

    /// The plaintext that is sealed: `version byte ‖ bincode(Snapshot)` (format-spec §8.1).
    pub fn encode_plain(&self) -> Vec<u8> {
        encode_versioned(self)
    }

    /// Decode an opened snapshot's plaintext (format-spec §8.1).
    pub fn decode_plain(plain: &[u8]) -> Result<Snapshot, FormatError> {
        decode_versioned("snapshot", plain, MAX_SNAPSHOT_OBJECT)
    }

    pub fn decode(sealed: &[u8], key: &SealKey) -> Result<Snapshot, Error> {
        if sealed.len() > MAX_SNAPSHOT_OBJECT {
            return Err(FormatError::TooLarge {
                what: "snapshot",
                count: sealed.len() as u64,
                limit: MAX_SNAPSHOT_OBJECT as u64,
            }
            .into());
        }
        let plain = crypto::open(key, AAD_SNAPSHOT, sealed)?;
        Ok(Self::decode_plain(&plain)?)
    }

    pub fn time(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_nanosecond(i128::from(self.time_ns))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}
