//! A decorator that retries transient backend failures with exponential backoff and full
//! jitter (base 100 ms, cap 10 s, 8 attempts by default).
//!
//! Layering with S3: the AWS SDK already retries each HTTP request a few times
//! (`S3Options::max_attempts`, default 3, short backoff, client-side retry quota). This
//! decorator sits above that and retries whole backend operations, riding out longer
//! throttling or outages. Worst case a request is sent `8 × 3` times before the error
//! reaches the caller. Only errors with `is_transient()` are retried; not-found, already-exists,
//! access-denied and the like return at once.
//!
//! A `put` whose first attempt reached the server but whose answer was lost may, when retried,
//! find its own object and return `AlreadyExists`; content-addressed callers already treat
//! that as success, so it is passed through unchanged.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::{BResult, Backend, Kind, StaleTemp, Temperature};

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per operation, including the first (at least 1).
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry; doubles with every further retry.
    pub base: Duration,
    /// Upper bound of any single backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff ceiling after `failures` failed attempts (1 for the first retry).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// "Full jitter": a uniformly random wait between zero and the ceiling, so that many
    /// clients hitting the same throttled service spread out.
    pub fn delay(&self, failures: u32) -> Duration {
        let mut r = [0u8; 8];
        crate::crypto::fill_random(&mut r);
        let unit = (u64::from_le_bytes(r) >> 11) as f64 / (1u64 << 53) as f64;
        self.ceiling(failures).mul_f64(unit)
    }
}

/// Retries transient failures of the wrapped backend.
pub struct Retry<B> {
    inner: B,
    policy: RetryPolicy,
    retries: AtomicU64,
}

impl<B: Backend> Retry<B> {
    /// Wrap with the default policy.
    pub fn new(inner: B) -> Self {
        Self::with_policy(inner, RetryPolicy::default())
    }

    pub fn with_policy(inner: B, policy: RetryPolicy) -> Self {
        Retry {
            inner,
            policy,
            retries: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// How many retries (not first attempts) were made so far, for summaries and tests.
    pub fn retries(&self) -> u64 {
        self.retries.load(Relaxed)
    }

    fn run<T>(&self, mut op: impl FnMut() -> BResult<T>) -> BResult<T> {
        let mut failures = 0u32;
        loop {
            match op() {
                Err(e) if e.is_transient() && failures + 1 < self.policy.max_attempts.max(1) => {
                    failures += 1;
                    let wait = self.policy.delay(failures);
                    tracing::warn!(
                        "{e}; retrying in {wait:?} (attempt {} of {})",
                        failures + 1,
                        self.policy.max_attempts
                    );
                    self.retries.fetch_add(1, Relaxed);
                    std::thread::sleep(wait);
                }
                other => return other,
            }
        }
    }
}

// `stage`/`commit` keep the trait's buffered default: a retried `put` needs the whole object,
// and bytes streamed into the inner backend's sink could not be sent again.
impl<B: Backend> Backend for Retry<B> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> BResult<()> {
        self.run(|| self.inner.create())
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()> {
        self.run(|| self.inner.put(kind, name, data, temp))
    }
    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        self.run(|| self.inner.get(kind, name))
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
        self.run(|| self.inner.get_range(kind, name, offset, len))
    }
    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        self.run(|| self.inner.stat(kind, name))
    }
    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        self.run(|| self.inner.list(kind))
    }
    fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        self.run(|| self.inner.delete(kind, name))
    }
    fn delete_many(&self, kind: Kind, names: &[String]) -> BResult<()> {
        self.run(|| self.inner.delete_many(kind, names))
    }
    fn wire_stats(&self) -> Option<super::RequestStats> {
        self.inner.wire_stats()
    }
    fn cheap_ranges(&self) -> bool {
        self.inner.cheap_ranges()
    }
    fn remove_stale_temp(&self, older_than: Duration, dry_run: bool) -> BResult<StaleTemp> {
        self.inner.remove_stale_temp(older_than, dry_run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;
    use crate::backend::BackendError;
    use std::sync::atomic::AtomicU32;

    /// Fails the first `fail` calls of every operation with the given error kind.
    struct Flaky {
        inner: MemBackend,
        fail: u32,
        calls: AtomicU32,
        transient: bool,
    }

    impl Flaky {
        fn check(&self, kind: Kind, name: &str) -> BResult<()> {
            if self.calls.fetch_add(1, Relaxed) < self.fail {
                let message = "injected".to_string();
                return Err(BackendError::Remote {
                    kind,
                    name: name.into(),
                    message,
                    transient: self.transient,
                });
            }
            Ok(())
        }
    }

    impl Backend for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn create(&self) -> BResult<()> {
            Ok(())
        }
        fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()> {
            self.check(kind, name)?;
            self.inner.put(kind, name, data, temp)
        }
        fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
            self.check(kind, name)?;
            self.inner.get(kind, name)
        }
        fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
            self.inner.get_range(kind, name, offset, len)
        }
        fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
            self.inner.stat(kind, name)
        }
        fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
            self.inner.list(kind)
        }
        fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
            self.inner.delete(kind, name)
        }
    }

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
        }
    }

    fn flaky(fail: u32, transient: bool) -> Flaky {
        Flaky {
            inner: MemBackend::new(),
            fail,
            calls: AtomicU32::new(0),
            transient,
        }
    }

    #[test]
    fn retries_transient_errors_until_success() {
        let b = Retry::with_policy(flaky(3, true), fast(8));
        b.put(Kind::Index, "a1", b"x", Temperature::Hot).unwrap();
        assert_eq!(b.retries(), 3);
        assert_eq!(b.get(Kind::Index, "a1").unwrap(), b"x");
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let b = Retry::with_policy(flaky(100, true), fast(4));
        let e = b.get(Kind::Index, "a1").unwrap_err();
        assert!(e.is_transient());
        assert_eq!(b.inner().calls.load(Relaxed), 4);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let b = Retry::with_policy(flaky(1, false), fast(8));
        assert!(b.get(Kind::Index, "a1").is_err());
        assert_eq!(b.retries(), 0);
        assert!(b.get(Kind::Index, "a1").unwrap_err().is_not_found());
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(50), Duration::from_secs(10));
        assert!((1..40).all(|f| p.delay(f) <= p.ceiling(f)));
    }
}
