//! The S3 requests behind each read, list and delete operation (uploads are in `upload`).

use std::sync::atomic::AtomicBool;

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
};

use super::errors::{body_error, classify, classify_sdk, sdk_error, Class, Failure};
use super::options::S3Options;
use crate::backend::{BResult, BackendError, Kind};

/// DeleteObjects accepts at most this many keys per request.
const DELETE_BATCH: usize = 1000;

/// The shared state of an `S3Backend`, used by its async operations.
pub(super) struct Inner {
    pub client: aws_sdk_s3::Client,
    pub opts: S3Options,
    /// Cleared when the server answers 501 to `If-None-Match` (HEAD-then-PUT from then on).
    pub conditional_put: AtomicBool,
}

impl Inner {
    /// The object key of `kind/name`, e.g. `prefix/data/ab/ab12…`.
    pub fn key(&self, kind: Kind, name: &str) -> String {
        self.under_prefix(&kind.path(name))
    }

    fn under_prefix(&self, path: &str) -> String {
        if self.opts.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{}", self.opts.prefix, path)
        }
    }

    pub async fn create_bucket(&self) -> BResult<()> {
        let bucket = &self.opts.bucket;
        let op = |what: &str| format!("{what} (bucket {bucket})");
        let Err(head_err) = self.client.head_bucket().bucket(bucket).send().await else {
            return Ok(());
        };
        let head = classify_sdk(&head_err);
        if head.class == Class::Transient {
            return Err(head.into_backend(Kind::Config, "", &op("HeadBucket")));
        }
        let mut req = self.client.create_bucket().bucket(bucket);
        // AWS itself wants the region spelt out except for us-east-1.
        let region = self.client.config().region().map(|r| r.to_string());
        if let Some(r) = region.filter(|r| r != super::client::DEFAULT_REGION) {
            if super::client::endpoint(&self.opts).is_none() {
                let cfg = CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(r.as_str()));
                req = req.create_bucket_configuration(cfg.build());
            }
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists() => {
                    Ok(())
                }
                _ => Err(sdk_error(Kind::Config, "", &op("CreateBucket"), e)),
            },
        }
    }

    pub async fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(&self.opts.bucket)
            .key(self.key(kind, name))
            .send()
            .await
            .map_err(|e| sdk_error(kind, name, "GET", e))?;
        let expected = out.content_length();
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| body_error(kind, name, "GET", e))?
            .to_vec();
        if let Some(n) = expected {
            if u64::try_from(n).ok() != Some(data.len() as u64) {
                let detail = format!("short body: {} of {n} bytes", data.len());
                return Err(Failure::new(Class::Transient, detail).into_backend(kind, name, "GET"));
            }
        }
        Ok(data)
    }

    pub async fn get_range(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        len: u64,
    ) -> BResult<Vec<u8>> {
        let beyond = |size: String| {
            Failure::new(
                Class::Permanent,
                format!("range {offset}+{len} beyond object size {size}"),
            )
            .into_backend(kind, name, "GET")
        };
        let Some(end) = offset.checked_add(len) else {
            return Err(beyond("(overflow)".to_string()));
        };
        if len == 0 {
            // An empty HTTP range cannot be expressed; check the bounds with HEAD instead.
            let size = self
                .stat(kind, name)
                .await?
                .ok_or_else(|| BackendError::NotFound {
                    kind,
                    name: name.into(),
                })?;
            return if offset <= size {
                Ok(Vec::new())
            } else {
                Err(beyond(size.to_string()))
            };
        }
        let res = self
            .client
            .get_object()
            .bucket(&self.opts.bucket)
            .key(self.key(kind, name))
            .range(format!("bytes={offset}-{}", end - 1))
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) => {
                let f = classify_sdk(&e);
                let status = e.raw_response().map(|r| r.status().as_u16());
                return Err(if status == Some(416) {
                    beyond(f.detail)
                } else {
                    f.into_backend(kind, name, "GET")
                });
            }
        };
        let ranged = out.content_range().is_some();
        let size = out.content_length();
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| body_error(kind, name, "GET", e))?
            .to_vec();
        if size.is_some_and(|n| u64::try_from(n).ok() != Some(data.len() as u64)) {
            let detail = format!("short body: {} bytes, expected {size:?}", data.len());
            return Err(Failure::new(Class::Transient, detail).into_backend(kind, name, "GET"));
        }
        let whole = data.len() as u64;
        if !ranged && (offset, len) != (0, whole) {
            // The server ignored the Range header and sent the whole object.
            return match (usize::try_from(offset), usize::try_from(end)) {
                (Ok(a), Ok(b)) if end <= whole => Ok(data[a..b].to_vec()),
                _ => Err(beyond(whole.to_string())),
            };
        }
        if data.len() as u64 != len {
            return Err(beyond(format!("(got {} bytes)", data.len())));
        }
        Ok(data)
    }

    pub async fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        let res = self
            .client
            .head_object()
            .bucket(&self.opts.bucket)
            .key(self.key(kind, name))
            .send()
            .await;
        match res {
            Ok(out) => Ok(Some(
                out.content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
            )),
            Err(e) => match classify_sdk(&e) {
                f if f.class == Class::NotFound => Ok(None),
                f => Err(f.into_backend(kind, name, "HEAD")),
            },
        }
    }

    pub async fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        if kind == Kind::Config {
            return Ok(self
                .stat(kind, "config")
                .await?
                .map(|s| ("config".to_string(), s))
                .into_iter()
                .collect());
        }
        let prefix = self.under_prefix(&format!("{}/", kind.dir()));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.opts.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(kind, "", "LIST", e))?;
            for obj in page.contents() {
                let Some(rest) = obj.key().and_then(|k| k.strip_prefix(&prefix)) else {
                    continue;
                };
                if let Some(name) = object_name(kind, rest) {
                    let size = obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                    out.push((name.to_string(), size));
                }
            }
            match (page.is_truncated(), page.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_string()),
                (Some(true), None) => {
                    let f = Failure::new(
                        Class::Permanent,
                        "truncated listing without a continuation token",
                    );
                    return Err(f.into_backend(kind, "", "LIST"));
                }
                _ => return Ok(out),
            }
        }
    }

    pub async fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        let res = self
            .client
            .delete_object()
            .bucket(&self.opts.bucket)
            .key(self.key(kind, name))
            .send()
            .await;
        match res.map_err(|e| sdk_error(kind, name, "DELETE", e)) {
            Err(BackendError::NotFound { .. }) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_many(&self, kind: Kind, names: &[String]) -> BResult<()> {
        for batch in names.chunks(DELETE_BATCH) {
            let first = batch.first().map(String::as_str).unwrap_or_default();
            let build_err = |e: aws_smithy_types::error::operation::BuildError| {
                Failure::new(Class::Permanent, e.to_string()).into_backend(
                    kind,
                    first,
                    "DeleteObjects",
                )
            };
            let ids = batch
                .iter()
                .map(|n| ObjectIdentifier::builder().key(self.key(kind, n)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(build_err)?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(build_err)?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.opts.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| sdk_error(kind, first, "DeleteObjects", e))?;
            if let Some(e) = delete_failure(kind, batch.len(), out.errors()) {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The error for the per-key failures of one DeleteObjects batch (missing keys are fine):
/// named after the first failed object, listing up to five, transient only if all are.
fn delete_failure(
    kind: Kind,
    batch_len: usize,
    errors: &[aws_sdk_s3::types::Error],
) -> Option<BackendError> {
    let failed: Vec<_> = errors
        .iter()
        .filter(|e| e.code() != Some("NoSuchKey"))
        .collect();
    let first = failed.first()?;
    let classes: Vec<Class> = failed.iter().map(|e| classify(None, e.code())).collect();
    let class = if classes.iter().all(|c| *c == Class::Transient) {
        Class::Transient
    } else if classes.contains(&Class::Denied) {
        Class::Denied
    } else {
        Class::Permanent
    };
    let key = first.key().unwrap_or_default();
    let name = key.rsplit('/').next().unwrap_or(key);
    let examples: Vec<String> = failed
        .iter()
        .take(5)
        .map(|e| {
            let (k, c) = (e.key().unwrap_or("?"), e.code().unwrap_or("?"));
            format!("{k}: {c}: {}", e.message().unwrap_or(""))
        })
        .collect();
    let detail = format!(
        "{} of {batch_len} keys not deleted: {}",
        failed.len(),
        examples.join("; ")
    );
    Some(Failure::new(class, detail).into_backend(kind, name, "DeleteObjects"))
}

/// The object name below a kind's folder, or None for anything that is not a plain object
/// name (temporary files, folder markers, deeper nesting, misplaced packs).
fn object_name(kind: Kind, rest: &str) -> Option<&str> {
    let name = if kind.is_fanned_out() {
        let (fan, name) = rest.split_once('/')?;
        if fan.len() != 2 || !fan.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        name
    } else {
        rest
    };
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains('/');
    plain.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_listed() {
        assert_eq!(object_name(Kind::Pack, "ab/ab12"), Some("ab12"));
        assert_eq!(object_name(Kind::Pack, "ab12"), None);
        assert_eq!(object_name(Kind::Pack, "ab/.tmp-x"), None);
        assert_eq!(object_name(Kind::Pack, "ab/cd/ef"), None);
        assert_eq!(object_name(Kind::Pack, "zz/ab"), None);
        assert_eq!(object_name(Kind::Index, "ab12"), Some("ab12"));
        assert_eq!(object_name(Kind::Index, "x/ab12"), None);
        assert_eq!(object_name(Kind::Index, ""), None);
    }

    fn key_error(key: &str, code: &str) -> aws_sdk_s3::types::Error {
        aws_sdk_s3::types::Error::builder()
            .key(key)
            .code(code)
            .message("m")
            .build()
    }

    #[test]
    fn delete_failures_are_reported_per_key() {
        assert!(
            delete_failure(Kind::Pack, 3, &[key_error("r/data/ab/ab1", "NoSuchKey")]).is_none()
        );
        let errs = [
            key_error("r/data/ab/ab1", "SlowDown"),
            key_error("r/data/cd/cd2", "InternalError"),
        ];
        let e = delete_failure(Kind::Pack, 3, &errs).unwrap();
        assert!(e.is_transient());
        let msg = e.to_string();
        assert!(
            msg.starts_with("pack/ab1:") && msg.contains("2 of 3") && msg.contains("cd2"),
            "{msg}"
        );
        let errs = [
            key_error("r/data/ab/ab1", "SlowDown"),
            key_error("r/data/cd/cd2", "AccessDenied"),
        ];
        let e = delete_failure(Kind::Pack, 2, &errs).unwrap();
        assert!(
            !e.is_transient() && e.to_string().contains("access denied"),
            "{e}"
        );
    }
}
