//! A byte-bounded LRU cache of decrypted data chunks, shared by readers and read-ahead workers;
//! a chunk being fetched is fetched once, and other readers of it wait for that fetch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::Result;
use crate::id::Id;

/// Plaintext of one data chunk.
pub type Chunk = Arc<[u8]>;

#[derive(Default)]
struct Inner {
    map: HashMap<Id, (Chunk, u64)>,
    /// Last-use tick → chunk; the first entry is the least recently used.
    order: BTreeMap<u64, Id>,
    bytes: u64,
    tick: u64,
    inflight: HashSet<Id>,
}

impl Inner {
    fn touch(&mut self, id: &Id) -> Option<Chunk> {
        self.tick += 1;
        let tick = self.tick;
        let (chunk, old) = self.map.get_mut(id)?;
        let old = std::mem::replace(old, tick);
        let chunk = chunk.clone();
        self.order.remove(&old);
        self.order.insert(tick, *id);
        Some(chunk)
    }

    fn insert(&mut self, id: Id, chunk: Chunk, capacity: u64) {
        let len = chunk.len() as u64;
        if len > capacity || self.map.contains_key(&id) {
            return;
        }
        while self.bytes + len > capacity {
            let Some((_, victim)) = self.order.pop_first() else {
                break;
            };
            if let Some((c, _)) = self.map.remove(&victim) {
                self.bytes -= c.len() as u64;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, id);
        self.map.insert(id, (chunk, self.tick));
        self.bytes += len;
    }
}

/// Cache statistics, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub chunks: usize,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
}

pub struct ChunkCache {
    inner: Mutex<Inner>,
    ready: Condvar,
    capacity: u64,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl ChunkCache {
    pub fn new(capacity: u64) -> ChunkCache {
        ChunkCache {
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            capacity,
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the cache consistent enough to keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The chunk from the cache, or fetched with `fetch` (once, however many ask at once).
    pub fn get_or_fetch(&self, id: &Id, fetch: impl FnOnce() -> Result<Vec<u8>>) -> Result<Chunk> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut inner = self.lock();
        loop {
            if let Some(chunk) = inner.touch(id) {
                self.hits.fetch_add(1, Relaxed);
                return Ok(chunk);
            }
            if !inner.inflight.contains(id) {
                break;
            }
            inner = self.ready.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
        self.misses.fetch_add(1, Relaxed);
        inner.inflight.insert(*id);
        drop(inner);
        self.finish(id, fetch())
    }

    /// Fetch a chunk into the cache unless it is there or on its way (read-ahead).
    pub fn prefetch(&self, id: &Id, fetch: impl FnOnce() -> Result<Vec<u8>>) -> Result<()> {
        {
            let mut inner = self.lock();
            if inner.map.contains_key(id) || inner.inflight.contains(id) {
                return Ok(());
            }
            inner.inflight.insert(*id);
        }
        self.finish(id, fetch()).map(|_| ())
    }

    /// Whether the chunk is cached or being fetched (read-ahead skips those).
    pub fn has(&self, id: &Id) -> bool {
        let inner = self.lock();
        inner.map.contains_key(id) || inner.inflight.contains(id)
    }

    fn finish(&self, id: &Id, fetched: Result<Vec<u8>>) -> Result<Chunk> {
        let mut inner = self.lock();
        inner.inflight.remove(id);
        let out = fetched.map(|plain| {
            let chunk: Chunk = plain.into();
            inner.insert(*id, chunk.clone(), self.capacity);
            chunk
        });
        drop(inner);
        self.ready.notify_all();
        out
    }

    pub fn stats(&self) -> CacheStats {
        use std::sync::atomic::Ordering::Relaxed;
        let inner = self.lock();
        CacheStats {
            chunks: inner.map.len(),
            bytes: inner.bytes,
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_bound() {
        let cache = ChunkCache::new(10);
        for n in 0..3u8 {
            cache.get_or_fetch(&id(n), || Ok(vec![n; 4])).ok();
        }
        // 3 × 4 bytes > 10: chunk 0 went.
        assert!(!cache.has(&id(0)));
        assert!(cache.has(&id(1)) && cache.has(&id(2)));
        // Touch 1, insert 3: 2 is now the oldest and goes.
        cache.get_or_fetch(&id(1), || Ok(vec![9; 4])).ok();
        cache.get_or_fetch(&id(3), || Ok(vec![3; 4])).ok();
        assert!(cache.has(&id(1)) && cache.has(&id(3)) && !cache.has(&id(2)));
        assert_eq!(cache.stats().bytes, 8);
    }

    #[test]
    fn failed_fetches_are_not_cached_and_chunks_larger_than_the_cache_pass_through() {
        let cache = ChunkCache::new(4);
        let err = cache.get_or_fetch(&id(1), || Err(crate::Error::Invalid("x".into())));
        assert!(err.is_err());
        assert!(!cache.has(&id(1)));
        let big = cache.get_or_fetch(&id(2), || Ok(vec![1; 8]));
        assert_eq!(big.map(|c| c.len()).ok(), Some(8));
        assert!(!cache.has(&id(2)));
    }
}
