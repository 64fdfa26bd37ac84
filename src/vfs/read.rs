//! File reads: offset → chunk by the cumulative plaintext lengths of the file's chunks (from the
//! index, computed on first read and kept), chunks through the cache, and read-ahead of the
//! following chunks when a file is read sequentially.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};

use super::cache::{Chunk, ChunkCache};
use super::{Vfs, VfsOptions, VfsResult};
use crate::error::{Error, Result};
use crate::format::tree::Node;
use crate::id::{BlobKind, Id};
use crate::repo::Repository;

/// Per-file read state.
#[derive(Default)]
pub(super) struct FileState {
    /// End offset of each chunk (cumulative plaintext lengths).
    ends: OnceLock<Arc<Vec<u64>>>,
    /// Where the last read ended; a read starting there is sequential.
    next: AtomicU64,
}

struct Shared {
    repo: Arc<Repository>,
    cache: ChunkCache,
}

impl Shared {
    fn fetch(&self, id: &Id) -> Result<Vec<u8>> {
        self.repo.read_blob(BlobKind::Data, id)
    }

    fn chunk(&self, id: &Id) -> Result<Chunk> {
        self.cache.get_or_fetch(id, || self.fetch(id))
    }
}

/// The chunk cache and the read-ahead workers (stopped and joined on drop).
pub(super) struct Prefetcher {
    shared: Arc<Shared>,
    queue: Option<Sender<Id>>,
    workers: Vec<JoinHandle<()>>,
    window: u64,
}

impl Prefetcher {
    pub fn start(repo: Arc<Repository>, opts: &VfsOptions) -> Result<Prefetcher> {
        let shared = Arc::new(Shared {
            repo,
            cache: ChunkCache::new(opts.cache_bytes),
        });
        let threads = if opts.readahead_bytes == 0 {
            0
        } else {
            opts.readahead_threads
        };
        let (tx, rx) = crossbeam_channel::bounded::<Id>(64);
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (rx, shared) = (rx.clone(), shared.clone());
            let worker = std::thread::Builder::new()
                .name("vfs-readahead".into())
                .spawn(move || {
                    for id in rx {
                        if let Err(e) = shared.cache.prefetch(&id, || shared.fetch(&id)) {
                            tracing::debug!("read-ahead of chunk {id}: {e}");
                        }
                    }
                })
                .map_err(|e| Error::io("read-ahead thread", e))?;
            workers.push(worker);
        }
        Ok(Prefetcher {
            shared,
            queue: (threads > 0).then_some(tx),
            workers,
            window: opts.readahead_bytes,
        })
    }

    pub fn cache(&self) -> &ChunkCache {
        &self.shared.cache
    }

    /// Queue chunks `from..` of a file, up to the read-ahead window, that are not cached yet.
    fn ahead(&self, content: &[Id], ends: &[u64], from: usize) {
        let Some(queue) = &self.queue else { return };
        let start = from.checked_sub(1).and_then(|i| ends.get(i)).copied();
        let start = start.unwrap_or(0);
        for (id, end) in content.iter().zip(ends).skip(from) {
            if !self.shared.cache.has(id) {
                match queue.try_send(*id) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return,
                }
            }
            if end.saturating_sub(start) >= self.window {
                return;
            }
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.queue = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Vfs {
    /// Up to `size` bytes of a file from `offset` (fewer only at its end).
    pub fn read_at(&self, ino: u64, offset: u64, size: usize) -> VfsResult<Vec<u8>> {
        let (node, state) = self.file(ino)?;
        let ends = self.chunk_ends(&node, &state)?;
        let total = ends.last().copied().unwrap_or(0);
        let end = offset.saturating_add(size as u64).min(total);
        if offset >= end {
            return Ok(Vec::new());
        }
        let damaged = |detail: &str| {
            Error::damaged(
                "file",
                node.name_lossy(),
                format!("at offset {offset}: {detail}"),
            )
        };
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = ends.partition_point(|&e| e <= offset);
        let mut pos = offset;
        while pos < end {
            let id = node.content.get(i).ok_or_else(|| damaged("chunk list"))?;
            let start = i.checked_sub(1).and_then(|j| ends.get(j)).copied();
            let start = start.unwrap_or(0);
            let chunk_end = ends.get(i).copied().ok_or_else(|| damaged("chunk list"))?;
            let chunk = self.prefetch.shared.chunk(id)?;
            let (from, to) = (
                (pos - start) as usize,
                (chunk_end.min(end) - start) as usize,
            );
            let part = chunk
                .get(from..to)
                .ok_or_else(|| damaged("chunk shorter than the index says"))?;
            out.extend_from_slice(part);
            pos = start + to as u64;
            i += 1;
        }
        let previous = state.next.swap(end, Ordering::Relaxed);
        if offset == previous || offset == 0 {
            self.prefetch.ahead(&node.content, &ends, i);
        }
        Ok(out)
    }

    /// The cumulative chunk lengths of a file, from the index.
    fn chunk_ends(&self, node: &Node, state: &FileState) -> VfsResult<Arc<Vec<u64>>> {
        if let Some(ends) = state.ends.get() {
            return Ok(ends.clone());
        }
        let mut ends = Vec::with_capacity(node.content.len());
        let mut total = 0u64;
        for id in &node.content {
            let loc = self.repo.lookup(id)?.ok_or(Error::BlobMissing(*id))?;
            total += u64::from(loc.raw_length);
            ends.push(total);
        }
        let ends = Arc::new(ends);
        Ok(state.ends.get_or_init(|| ends).clone())
    }
}
