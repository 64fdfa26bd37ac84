//! The repository config object (format-spec §2.3): `"B2S3CONF" ‖ u32 LE version ‖ sealed body`.
//! The plaintext prefix tells "not a repository" and "newer format" apart before any password.

use serde::{Deserialize, Serialize};

use super::{blob::AAD_CONFIG, decode_versioned, encode_versioned, MAX_SMALL_OBJECT};
use crate::crypto::{self, SealKey};
use crate::error::{Error, FormatError};
use crate::id::Id;

pub const CONFIG_MAGIC: &[u8; 8] = b"B2S3CONF";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    /// fastcdc v2020 normalization level (0–3).
    pub normalization: u8,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 256 << 10,
            avg_size: 1 << 20,
            max_size: 4 << 20,
            normalization: 1,
        }
    }
}

impl ChunkerParams {
    /// fastcdc's bounds, and v2020's requirement that every size is even.
    pub fn validate(&self) -> Result<(), FormatError> {
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let ok = (fastcdc::v2020::MINIMUM_MIN..=fastcdc::v2020::MINIMUM_MAX).contains(&min)
            && (fastcdc::v2020::AVERAGE_MIN..=fastcdc::v2020::AVERAGE_MAX).contains(&avg)
            && (fastcdc::v2020::MAXIMUM_MIN..=fastcdc::v2020::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && max <= super::MAX_DATA_BLOB
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(FormatError::malformed(
                "config",
                format!("invalid chunker parameters {self:?}"),
            ))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Random id of the repository; names the local cache folder.
    pub repo_id: Id,
    pub chunker: ChunkerParams,
    /// zstd level for blobs (1–19); 0 stores uncompressed.
    pub compression_level: i32,
    /// Size at which a pack is closed and uploaded.
    pub pack_target_size: u32,
    /// Creation time, Unix seconds.
    pub created: i64,
}

impl Config {
    pub fn new(chunker: ChunkerParams, compression_level: i32, pack_target_size: u32) -> Self {
        Config {
            repo_id: Id::random(),
            chunker,
            compression_level,
            pack_target_size,
            created: jiff::Timestamp::now().as_second(),
        }
    }

    pub fn validate(&self) -> Result<(), FormatError> {
        self.chunker.validate()?;
        if !(0..=22).contains(&self.compression_level) {
            return Err(FormatError::malformed(
                "config",
                "compression level outside 0–22",
            ));
        }
        if !(1 << 20..=1 << 30).contains(&self.pack_target_size) {
            return Err(FormatError::malformed(
                "config",
                "pack target size outside 1 MiB–1 GiB",
            ));
        }
        Ok(())
    }

    pub fn encode(&self, key: &SealKey) -> Vec<u8> {
        let mut out = CONFIG_MAGIC.to_vec();
        out.extend_from_slice(&u32::from(super::FORMAT_VERSION).to_le_bytes());
        out.extend(crypto::seal(key, AAD_CONFIG, &encode_versioned(self)));
        out
    }

    /// The format version a config object declares, read without any key.
    pub fn peek_version(bytes: &[u8]) -> Result<u32, FormatError> {
        if bytes.len() < 12 || &bytes[..8] != CONFIG_MAGIC {
            return Err(FormatError::BadMagic { what: "config" });
        }
        Ok(u32::from_le_bytes([
            bytes[8], bytes[9], bytes[10], bytes[11],
        ]))
    }

    pub fn decode(bytes: &[u8], key: &SealKey) -> Result<Config, Error> {
        if bytes.len() > MAX_SMALL_OBJECT {
            return Err(FormatError::TooLarge {
                what: "config",
                count: bytes.len() as u64,
                limit: MAX_SMALL_OBJECT as u64,
            }
            .into());
        }
        let version = Self::peek_version(bytes)?;
        if version != u32::from(super::FORMAT_VERSION) {
            return Err(FormatError::UnsupportedVersion {
                what: "config",
                version,
            }
            .into());
        }
        let plain = crypto::open(key, AAD_CONFIG, &bytes[12..])?;
        let config: Config = decode_versioned("config", &plain, MAX_SMALL_OBJECT)?;
        config.validate()?;
        Ok(config)
    }
}
