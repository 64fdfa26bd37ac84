//! A decorator that counts requests and bytes by type, so every run can report its S3 cost.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use super::{BResult, Backend, Kind, Staged, StaleTemp, Temperature};

#[derive(Default)]
struct Counters {
    put: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// A snapshot of the counters, as printed in `--json` summaries.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RequestStats {
    #[serde(rename = "PUT")]
    pub put: u64,
    #[serde(rename = "GET")]
    pub get: u64,
    #[serde(rename = "HEAD")]
    pub head: u64,
    #[serde(rename = "LIST")]
    pub list: u64,
    #[serde(rename = "DELETE")]
    pub delete: u64,
    #[serde(skip)]
    pub bytes_up: u64,
    #[serde(skip)]
    pub bytes_down: u64,
}

impl RequestStats {
    /// The difference since an earlier reading.
    pub fn since(&self, earlier: &RequestStats) -> RequestStats {
        RequestStats {
            put: self.put - earlier.put,
            get: self.get - earlier.get,
            head: self.head - earlier.head,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            bytes_up: self.bytes_up - earlier.bytes_up,
            bytes_down: self.bytes_down - earlier.bytes_down,
        }
    }
}

pub struct Counting<B> {
    inner: B,
    c: Counters,
}

impl<B: Backend> Counting<B> {
    pub fn new(inner: B) -> Self {
        Counting {
            inner,
            c: Counters::default(),
        }
    }

    pub fn stats(&self) -> RequestStats {
        RequestStats {
            put: self.c.put.load(Relaxed),
            get: self.c.get.load(Relaxed),
            head: self.c.head.load(Relaxed),
            list: self.c.list.load(Relaxed),
            delete: self.c.delete.load(Relaxed),
            bytes_up: self.c.bytes_up.load(Relaxed),
            bytes_down: self.c.bytes_down.load(Relaxed),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend> Backend for Counting<B> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> BResult<()> {
        self.inner.create()
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()> {
        self.c.put.fetch_add(1, Relaxed);
        self.c.bytes_up.fetch_add(data.len() as u64, Relaxed);
        self.inner.put(kind, name, data, temp)
    }
    fn stage(&self, kind: Kind, temp: Temperature, size_hint: usize) -> BResult<Staged> {
        self.inner.stage(kind, temp, size_hint)
    }
    /// A committed object counts as one PUT of its bytes, however it was staged.
    fn commit(&self, staged: Staged, name: &str) -> BResult<()> {
        self.c.put.fetch_add(1, Relaxed);
        self.c.bytes_up.fetch_add(staged.len(), Relaxed);
        self.inner.commit(staged, name)
    }
    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        self.c.get.fetch_add(1, Relaxed);
        let r = self.inner.get(kind, name)?;
        self.c.bytes_down.fetch_add(r.len() as u64, Relaxed);
        Ok(r)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
        self.c.get.fetch_add(1, Relaxed);
        let r = self.inner.get_range(kind, name, offset, len)?;
        self.c.bytes_down.fetch_add(r.len() as u64, Relaxed);
        Ok(r)
    }
    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        self.c.head.fetch_add(1, Relaxed);
        self.inner.stat(kind, name)
    }
    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        self.c.list.fetch_add(1, Relaxed);
        self.inner.list(kind)
    }
    fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        self.c.delete.fetch_add(1, Relaxed);
        self.inner.delete(kind, name)
    }
    fn delete_many(&self, kind: Kind, names: &[String]) -> BResult<()> {
        self.c
            .delete
            .fetch_add(names.len().div_ceil(1000) as u64, Relaxed);
        self.inner.delete_many(kind, names)
    }
    fn wire_stats(&self) -> Option<RequestStats> {
        self.inner.wire_stats()
    }
    fn cheap_ranges(&self) -> bool {
        self.inner.cheap_ranges()
    }
    fn remove_stale_temp(&self, older_than: Duration, dry_run: bool) -> BResult<StaleTemp> {
        self.inner.remove_stale_temp(older_than, dry_run)
    }
}
