//! The S3 backend: objects in a bucket (under an optional prefix) through aws-sdk-s3, behind
//! the synchronous `Backend` trait. The backend owns a small tokio runtime and blocks on it,
//! so it must be called from plain threads, never from inside an async runtime.
//!
//! Retry layering: the SDK retries each request a few times itself (`S3Options::max_attempts`,
//! standard mode, default 3, with its own short backoff and retry quota); the `Retry` decorator
//! (`backend::retry`) wraps whole backend operations with longer, jittered backoff for outages
//! lasting seconds. Timeouts (connect 10 s, each attempt 5 min) make sure a dropped
//! connection surfaces as a transient error instead of hanging.
//!
//! Typical stack (outermost first): `Counting<Retry<S3Backend>>`, built as
//! `Counting::new(Retry::new(S3Backend::new(S3Options::from_url(url)?)?))`. Request summaries
//! can show both `Counting::stats()` (backend calls) and `S3Backend::wire_stats()` (HTTP
//! requests, including SDK retries and multipart parts).

mod client;
mod errors;
mod ops;
mod options;
mod upload;

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::runtime::Runtime;

use super::{check_name, BResult, Backend, BackendError, Kind, RequestStats, Temperature};

pub use options::{S3Credentials, S3Options, MAX_PARTS, MIN_PART_SIZE};

/// A repository in an S3 bucket. Cheap to share between threads (`&self` everywhere).
pub struct S3Backend {
    inner: ops::Inner,
    counters: Arc<client::WireCounters>,
    /// Always `Some` until drop (taken there to shut down without blocking).
    rt: Option<Runtime>,
}

impl S3Backend {
    /// Connect (lazily: no request is sent) with credentials and region from `opts` or the
    /// standard AWS chain (environment, profile files, web identity, container, IMDS).
    pub fn new(opts: S3Options) -> BResult<Self> {
        outside_async_runtime()?;
        if opts.bucket.is_empty() {
            return Err(BackendError::Other("S3 bucket name is empty".to_string()));
        }
        if let Some(e) = client::endpoint(&opts) {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(BackendError::Other(format!(
                    "S3 endpoint {e:?} must start with http:// or https://"
                )));
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-backend")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Other(format!("cannot start the S3 runtime: {e}")))?;
        let counters = Arc::new(client::WireCounters::default());
        let client = rt.block_on(client::build(&opts, counters.clone()))?;
        let inner = ops::Inner {
            client,
            opts,
            conditional_put: AtomicBool::new(true),
        };
        Ok(S3Backend {
            inner,
            counters,
            rt: Some(rt),
        })
    }

    /// Shorthand for `S3Backend::new(S3Options::from_url(url)?)`.
    pub fn from_url(url: &str) -> BResult<Self> {
        Self::new(S3Options::from_url(url)?)
    }

    pub fn options(&self) -> &S3Options {
        &self.inner.opts
    }

    /// Whether puts still use `If-None-Match: *`; false once the server answered 501 and the
    /// backend fell back to HEAD-then-PUT (which is not atomic against concurrent writers).
    pub fn uses_conditional_put(&self) -> bool {
        self.inner
            .conditional_put
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// HTTP requests actually sent so far (every SDK attempt, multipart part and fallback
    /// HEAD), by billing class, with request and response body bytes. `Counting` around the
    /// backend counts backend calls instead; the difference is retries and multipart overhead.
    pub fn wire_stats(&self) -> RequestStats {
        self.counters.snapshot()
    }

    fn block_on<F: Future>(&self, f: F) -> BResult<F::Output> {
        outside_async_runtime()?;
        match &self.rt {
            Some(rt) => Ok(rt.block_on(f)),
            None => Err(BackendError::Other(
                "the S3 backend is shut down".to_string(),
            )),
        }
    }
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        // Dropping a runtime blocks and panics inside async contexts; this never does.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The backend blocks the calling thread; inside an async runtime that would stall (or
/// panic), so refuse with an error instead.
fn outside_async_runtime() -> BResult<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(BackendError::Other(
            "the S3 backend is synchronous and cannot be called from inside an async runtime; \
             call it from a plain std::thread (not from a tokio task or spawn_blocking)"
                .to_string(),
        ));
    }
    Ok(())
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.inner.opts.url()
    }

    fn create(&self) -> BResult<()> {
        self.block_on(self.inner.create_bucket())?
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()> {
        check_name(kind, name)?;
        self.block_on(self.inner.put(kind, name, data, temp))?
    }

    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        check_name(kind, name)?;
        self.block_on(self.inner.get(kind, name))?
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
        check_name(kind, name)?;
        self.block_on(self.inner.get_range(kind, name, offset, len))?
    }

    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        check_name(kind, name)?;
        self.block_on(self.inner.stat(kind, name))?
    }

    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        self.block_on(self.inner.list(kind))?
    }

    fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        check_name(kind, name)?;
        self.block_on(self.inner.delete(kind, name))?
    }

    fn delete_many(&self, kind: Kind, names: &[String]) -> BResult<()> {
        names.iter().try_for_each(|n| check_name(kind, n))?;
        self.block_on(self.inner.delete_many(kind, names))?
    }
    fn wire_stats(&self) -> Option<super::RequestStats> {
        Some(S3Backend::wire_stats(self))
    }
}
