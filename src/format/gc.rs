//! Garbage-collection objects (format-spec §9.4, `gc.md`): backup session markers and prune
//! plans. Both are sealed `version byte ‖ bincode` objects under the metadata key.

use serde::{Deserialize, Serialize};

use super::blob::{AAD_PLAN, AAD_SESSION};
use super::{decode_versioned, encode_versioned, MAX_INDEX_OBJECT, MAX_SMALL_OBJECT};
use crate::crypto::{self, SealKey};
use crate::error::{Error, FormatError};
use crate::id::Id;

/// A running backup. Its object name is `<session id>-<heartbeat unix seconds>`, so prune
/// learns every session's liveness from one LIST; the sealed body is for humans and `cat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub start_s: i64,
    pub heartbeat_s: i64,
}

/// The parts of a session object's name.
pub fn session_name(id: &str, heartbeat_s: i64) -> String {
    format!("{id}-{heartbeat_s}")
}

/// Split `<id>-<heartbeat>`; None for names this version did not write.
pub fn parse_session_name(name: &str) -> Option<(&str, i64)> {
    let (id, hb) = name.rsplit_once('-')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((id, hb.parse().ok()?))
}

/// Phase one of a prune: packs condemned, index objects replaced, sessions to wait for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Unix seconds when the plan was written (after the new index objects).
    pub created_s: i64,
    /// Packs to delete in phase two unless a snapshot needs them by then.
    pub condemned: Vec<Id>,
    /// Index objects the new ones supersede; deleted in phase two.
    pub old_index: Vec<Id>,
    /// Index objects written by phase one (informational).
    pub new_index: Vec<Id>,
    /// Ids of the backup sessions alive right after the new index objects were written.
    pub sessions: Vec<String>,
}

fn seal<T: Serialize>(key: &SealKey, aad: &[u8], v: &T) -> Vec<u8> {
    crypto::seal(key, aad, &encode_versioned(v))
}

fn open<T: serde::de::DeserializeOwned>(
    key: &SealKey,
    aad: &[u8],
    what: &'static str,
    sealed: &[u8],
    limit: usize,
) -> Result<T, Error> {
    if sealed.len() > limit {
        return Err(FormatError::TooLarge {
            what,
            count: sealed.len() as u64,
            limit: limit as u64,
        }
        .into());
    }
    let plain = crypto::open(key, aad, sealed)?;
    Ok(decode_versioned(what, &plain, limit)?)
}

impl Session {
    pub fn encode(&self, key: &SealKey) -> Vec<u8> {
        seal(key, AAD_SESSION, self)
    }
    pub fn decode(sealed: &[u8], key: &SealKey) -> Result<Session, Error> {
        open(key, AAD_SESSION, "session", sealed, MAX_SMALL_OBJECT)
    }
}

impl Plan {
    pub fn encode(&self, key: &SealKey) -> Vec<u8> {
        seal(key, AAD_PLAN, self)
    }
    pub fn decode(sealed: &[u8], key: &SealKey) -> Result<Plan, Error> {
        open(key, AAD_PLAN, "plan", sealed, MAX_INDEX_OBJECT)
    }
}
