//! Blob payloads and their associated data (format-spec §4).
//!
//! A blob's sealed form is `nonce ‖ AEAD(compression byte ‖ body) ‖ tag` where the AAD is
//! `"b2s3" ‖ format version ‖ kind ‖ id`, so a blob cannot be moved to another id or kind.

use crate::id::{BlobKind, Id};

pub const AAD_LEN: usize = 4 + 1 + 1 + 32;

/// Compression of a blob body.
pub const COMPRESSION_NONE: u8 = 0;
pub const COMPRESSION_ZSTD: u8 = 1;

pub fn blob_aad(kind: BlobKind, id: &Id) -> [u8; AAD_LEN] {
    let mut aad = [0u8; AAD_LEN];
    aad[..4].copy_from_slice(b"b2s3");
    aad[4] = super::FORMAT_VERSION;
    aad[5] = kind as u8;
    aad[6..].copy_from_slice(&id.0);
    aad
}

/// AAD of the other sealed objects: a fixed string per object type (format-spec §4.2).
pub const AAD_CONFIG: &[u8] = b"b2s3 v1 config";
pub const AAD_PACK_HEADER: &[u8] = b"b2s3 v1 pack header";
pub const AAD_INDEX: &[u8] = b"b2s3 v1 index";
pub const AAD_SNAPSHOT: &[u8] = b"b2s3 v1 snapshot";
pub const AAD_KEY: &[u8] = b"b2s3 v1 key";
pub const AAD_SESSION: &[u8] = b"b2s3 v1 session";
pub const AAD_PLAN: &[u8] = b"b2s3 v1 plan";
