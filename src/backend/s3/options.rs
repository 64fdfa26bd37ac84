//! Settings of the S3 backend and the `s3://BUCKET/PREFIX` URL parser.

use std::fmt;

use crate::backend::{BResult, BackendError};

/// The smallest part S3 accepts (except for the last part of an upload).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3 allows at most this many parts per multipart upload.
pub const MAX_PARTS: u64 = 10_000;

/// Static credentials that replace the standard AWS credential chain (tests, CLI flags).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets, not even in debug logs.
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How to reach a bucket and how to talk to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix of the repository inside the bucket, without leading or trailing `/`
    /// (empty: the repository is the whole bucket).
    pub prefix: String,
    /// Endpoint URL of an S3-compatible service, e.g. `http://127.0.0.1:9000`. When unset,
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` are honoured, then AWS itself is used.
    /// Any explicit endpoint forces path-style addressing.
    pub endpoint: Option<String>,
    /// Region; when unset the standard AWS chain decides, falling back to `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted style.
    pub path_style: bool,
    /// Storage class for `Temperature::Cold` objects (e.g. `STANDARD_IA`); Hot objects are
    /// always STANDARD.
    pub storage_class_cold: Option<String>,
    /// Idle connections kept per host, and parallel part uploads of one multipart upload.
    pub connections: usize,
    /// Send and check checksums only where S3 requires them (for providers that reject
    /// flexible checksums).
    pub checksum_when_required: bool,
    /// Objects larger than this are uploaded in parts.
    pub multipart_threshold: u64,
    /// Size of each part of a multipart upload (at least 5 MiB; grown if 10 000 parts
    /// would not suffice).
    pub multipart_part_size: u64,
    /// Attempts per request inside the AWS SDK (1 disables SDK retries). The `Retry`
    /// decorator adds its own, slower retries on top; see `backend::retry`.
    pub max_attempts: u32,
    /// Explicit credentials; when unset the standard AWS chain is used.
    pub credentials: Option<S3Credentials>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            path_style: false,
            storage_class_cold: None,
            connections: 8,
            checksum_when_required: false,
            multipart_threshold: 64 * 1024 * 1024,
            multipart_part_size: 16 * 1024 * 1024,
            max_attempts: 3,
            credentials: None,
        }
    }
}

impl S3Options {
    /// Options for a bucket and prefix with all other settings at their defaults.
    pub fn new(bucket: impl Into<String>, prefix: impl AsRef<str>) -> Self {
        S3Options {
            bucket: bucket.into(),
            prefix: normalize_prefix(prefix.as_ref()),
            ..S3Options::default()
        }
    }

    /// Parse `s3://BUCKET` or `s3://BUCKET/PREFIX` (slashes around the prefix are dropped).
    pub fn from_url(url: &str) -> BResult<Self> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            BackendError::Other(format!(
                "not an S3 URL (expected s3://BUCKET/PREFIX): {url}"
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket(bucket) {
            return Err(BackendError::Other(format!(
                "invalid S3 bucket name {bucket:?} in {url}"
            )));
        }
        let prefix = normalize_prefix(prefix);
        if prefix
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
            && !prefix.is_empty()
        {
            return Err(BackendError::Other(format!(
                "invalid S3 prefix {prefix:?} in {url}"
            )));
        }
        Ok(S3Options::new(bucket, prefix))
    }

    /// The repository location as a URL, e.g. `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The part size actually used for an object of `len` bytes.
    pub(crate) fn part_size_for(&self, len: u64) -> u64 {
        let wanted = self.multipart_part_size.max(MIN_PART_SIZE);
        wanted.max(len.div_ceil(MAX_PARTS))
    }
}

/// Drop leading and trailing slashes and collapse repeated ones.
fn normalize_prefix(prefix: &str) -> String {
    prefix
        .split('/')
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// S3 bucket naming rules, loosely: 3–63 of lowercase letters, digits, `.`, `-`; providers
/// differ in details, so only what would break URLs is refused.
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-' || c == b'_'
        })
        && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let o = S3Options::from_url("s3://my-bucket").unwrap();
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("my-bucket", ""));
        let o = S3Options::from_url("s3://my-bucket/").unwrap();
        assert_eq!(o.prefix, "");
        let o = S3Options::from_url("s3://my-bucket//a/b//").unwrap();
        assert_eq!(o.prefix, "a/b");
        assert_eq!(o.url(), "s3://my-bucket/a/b");
        assert!(S3Options::from_url("http://x/y").is_err());
        assert!(S3Options::from_url("s3:///prefix").is_err());
        assert!(S3Options::from_url("s3://Bad_Bucket!/p").is_err());
        assert!(S3Options::from_url("s3://bucket/a/../b").is_err());
    }

    #[test]
    fn part_size_grows_for_huge_objects() {
        let o = S3Options {
            multipart_part_size: 1,
            ..S3Options::default()
        };
        assert_eq!(o.part_size_for(10), MIN_PART_SIZE);
        let huge = MIN_PART_SIZE * MAX_PARTS * 3;
        assert!(o.part_size_for(huge) * MAX_PARTS >= huge);
    }
}
