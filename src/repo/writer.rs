//! Writing new blobs (format-spec §5, §9.1): blobs are packed by kind, a full pack is handed to
//! uploader threads, each uploaded pack is recorded as pending in the local index, and index
//! objects are written every few packs and at the end. Nothing is referenced before it is stored.
//!
//! Data packs are streamed: each sealed blob is appended to a staged object of the backend
//! (`Backend::stage`) as it arrives, hashed on the way for the pack's name, and the header and
//! trailer are appended when the pack is full. On a local repository the bytes go straight to a
//! temporary file, so no pack is ever held in memory; the uploader threads commit it (fsync,
//! link into place) while the sealing threads go on. Backends without a sink of their own (S3)
//! buffer a staged pack in memory and `put` it at the commit, as before. Tree packs are small,
//! built in memory and also kept in the local object cache.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use super::cache::ObjectCache;
use super::index_sync::write_index_object;
use super::{DynBackend, Repository};
use crate::backend::{Backend, Counting, Kind, Staged, Temperature};
use crate::codec::SealedBlob;
use crate::crypto::SealKey;
use crate::error::{Error, Result};
use crate::format::index::IndexPack;
use crate::format::pack::{PackBuilder, PackLayout};
use crate::id::{BlobKind, Id, ObjectHasher};
use crate::index::LocalIndex;

#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Seal and count, but store nothing.
    pub dry_run: bool,
    /// Parallel pack uploads.
    pub connections: usize,
    /// Write an index object after this many packs (bounds what a crash can orphan).
    pub index_every_packs: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            dry_run: false,
            connections: 2,
            index_every_packs: 32,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct WriterStats {
    pub packs: u64,
    pub blobs: u64,
    /// Sealed bytes stored (after compression and encryption), pack headers included.
    pub bytes: u64,
}

/// A finished pack on its way to storage.
struct Upload {
    body: Body,
    pack: IndexPack,
}

enum Body {
    /// A data pack, staged in the backend while it was built: the commit stores it.
    Data(Staged),
    /// A tree pack, built in memory.
    Tree(Vec<u8>),
}

/// A data pack being written: blobs go to the staged object as they arrive (None in a dry run,
/// which only counts), and into the hash that names the pack.
struct DataPack {
    staged: Option<Staged>,
    hasher: ObjectHasher,
    layout: PackLayout,
}

impl DataPack {
    fn add(&mut self, blob: &SealedBlob) -> Result<()> {
        self.append(&blob.sealed)?;
        self.layout
            .add(blob.kind, blob.id, blob.sealed.len(), blob.raw_length);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(s) = &mut self.staged {
            s.write(bytes)?;
        }
        self.hasher.update(bytes);
        Ok(())
    }

    /// Append the header and trailer (the bytes `PackBuilder::finish` would produce); returns
    /// the staged object, the pack's index entry and its size.
    fn finish(mut self, key: &SealKey) -> Result<(Option<Staged>, IndexPack, u64)> {
        let tail = self.layout.tail(key);
        self.append(&tail)?;
        let size = self.layout.len() + tail.len() as u64;
        let pack = IndexPack {
            pack: self.hasher.finish(),
            entries: self.layout.into_entries(),
        };
        Ok((self.staged, pack, size))
    }
}

/// State shared with the uploader threads.
struct Shared {
    backend: Arc<Counting<DynBackend>>,
    index: Arc<LocalIndex>,
    cache: ObjectCache,
    meta: SealKey,
    uploaded: Mutex<Vec<IndexPack>>,
    error: Mutex<Option<Error>>,
    index_every: usize,
    claims: Mutex<Claims>,
}

/// Blobs claimed in this run whose pack the local index does not hold yet. Once it does, the
/// index answers for them and their claims are dropped: so the set stays as small as the packs
/// in flight instead of growing by ~34 bytes per new blob (hundreds of MiB in a first backup
/// of 10 M files). A dry run records nothing, so it keeps every claim.
#[derive(Default)]
struct Claims {
    held: HashSet<(BlobKind, Id)>,
    /// Bumped whenever claims are dropped: a claim that looked in the index before a drop must
    /// look again, as the dropped blob may be its own.
    drops: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn upload(&self, up: Upload) -> Result<()> {
        let name = up.pack.pack.to_hex();
        let stored = match up.body {
            Body::Data(staged) => self.backend.commit(staged, &name),
            Body::Tree(bytes) => {
                let r = self
                    .backend
                    .put(Kind::Pack, &name, &bytes, Temperature::Hot);
                if r.is_ok() || r.as_ref().is_err_and(|e| e.is_already_exists()) {
                    // Tree packs are read by every later backup, ls and restore: keep a copy.
                    self.cache.put(Kind::Pack, &name, &bytes);
                }
                r
            }
        };
        match stored {
            Err(e) if e.is_already_exists() => {}
            other => other?,
        }
        self.index.add_pending(&up.pack)?;
        // Only now, with the index answering for them.
        {
            let mut claims = lock(&self.claims);
            for e in &up.pack.entries {
                claims.held.remove(&(e.kind, e.id));
            }
            claims.drops += 1;
        }
        let batch = {
            let mut done = lock(&self.uploaded);
            done.push(up.pack);
            if done.len() >= self.index_every {
                std::mem::take(&mut *done)
            } else {
                Vec::new()
            }
        };
        if !batch.is_empty() {
            write_index_object(&*self.backend, &self.meta, &self.index, batch, vec![])?;
        }
        Ok(())
    }

    fn fail(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
    }
}

pub struct PackWriter<'r> {
    repo: &'r Repository,
    opts: WriterOptions,
    /// The data pack being written; opened with its first blob.
    data: Mutex<Option<DataPack>>,
    tree: Mutex<PackBuilder>,
    stats: Mutex<WriterStats>,
    shared: Arc<Shared>,
    tx: Option<Sender<Upload>>,
    threads: Vec<JoinHandle<()>>,
}

impl<'r> PackWriter<'r> {
    pub(super) fn new(repo: &'r Repository, opts: WriterOptions) -> Self {
        let (backend, index, cache) = repo.shared_parts();
        let shared = Arc::new(Shared {
            backend,
            index,
            cache,
            meta: repo.codec().keys().meta.clone(),
            uploaded: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            index_every: opts.index_every_packs.max(1),
            claims: Mutex::new(Claims::default()),
        });
        let connections = opts.connections.max(1);
        // A rendezvous channel: a finished pack waits in the hand of the thread that built it
        // until an uploader is free. Where packs are buffered in memory (S3) this bounds them to
        // `connections` + 2 (uploading, waiting, being filled); streamed packs hold no memory.
        let (tx, rx) = bounded::<Upload>(0);
        let threads = (0..connections)
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for up in rx {
                        if let Err(e) = shared.upload(up) {
                            shared.fail(e);
                        }
                    }
                })
            })
            .collect();
        PackWriter {
            repo,
            opts,
            data: Mutex::new(None),
            tree: Mutex::new(PackBuilder::new()),
            stats: Mutex::new(WriterStats::default()),
            shared,
            tx: Some(tx),
            threads,
        }
    }

    /// Claim a data blob id for this run: true when it is neither stored nor claimed already, in
    /// which case the caller must `add_sealed` it.
    pub fn claim(&self, id: &Id) -> Result<bool> {
        self.claim_kind(BlobKind::Data, id)
    }

    /// Claim a blob of a kind. The kind matters: ids are keyed hashes of the plaintext only, so a
    /// chunk can share its id with a tree (an empty folder's tree is the two bytes `01 00`), and
    /// each must be stored sealed as its own kind.
    pub fn claim_kind(&self, kind: BlobKind, id: &Id) -> Result<bool> {
        let key = (kind, *id);
        let drops = {
            let claims = lock(&self.shared.claims);
            if claims.held.contains(&key) {
                return Ok(false);
            }
            claims.drops
        };
        if self.repo.index().lookup_kind(kind, id)?.is_some() {
            return Ok(false);
        }
        let mut claims = lock(&self.shared.claims);
        // Another thread may have claimed, stored and recorded it, and dropped its claim, since
        // the look above. Rare (once per pack stored), so look again under the lock.
        if claims.drops != drops && self.repo.index().lookup_kind(kind, id)?.is_some() {
            return Ok(false);
        }
        Ok(claims.held.insert(key))
    }

    /// Seal and store a blob unless it exists; returns true when it was new.
    pub fn add(&self, kind: BlobKind, plain: &[u8]) -> Result<(Id, bool)> {
        let id = self.repo.codec().id(plain);
        if !self.claim_kind(kind, &id)? {
            return Ok((id, false));
        }
        self.add_sealed(self.repo.codec().seal(kind, id, plain))?;
        Ok((id, true))
    }

    /// Add a blob sealed by the caller (after a successful `claim`).
    pub fn add_sealed(&self, blob: SealedBlob) -> Result<()> {
        self.check_failed()?;
        match blob.kind {
            BlobKind::Data => {
                let full = self.add_data(&blob)?;
                lock(&self.stats).blobs += 1;
                full.map_or(Ok(()), |p| self.ship_data(p))
            }
            BlobKind::Tree => {
                let full = {
                    let mut b = lock(&self.tree);
                    b.add(blob.kind, blob.id, &blob.sealed, blob.raw_length);
                    self.is_full(b.len() as u64, b.count())
                        .then(|| std::mem::take(&mut *b))
                };
                lock(&self.stats).blobs += 1;
                full.map_or(Ok(()), |b| self.ship_tree(b))
            }
        }
    }

    /// Append a data blob to the open data pack; returns the pack when it is full.
    fn add_data(&self, blob: &SealedBlob) -> Result<Option<DataPack>> {
        let mut slot = lock(&self.data);
        let pack = match &mut *slot {
            Some(p) => p,
            None => slot.insert(self.open_data_pack()?),
        };
        if let Err(e) = pack.add(blob) {
            // A failed write leaves the staged pack unusable: drop it (its temporary storage
            // goes with it). Its blobs are lost to this run, which fails with the error.
            *slot = None;
            return Err(e);
        }
        Ok(if self.is_full(pack.layout.len(), pack.layout.count()) {
            slot.take()
        } else {
            None
        })
    }

    fn open_data_pack(&self) -> Result<DataPack> {
        let staged = if self.opts.dry_run {
            None
        } else {
            // The size of a full pack: the target, the blob that crossed it, header and trailer.
            let config = self.repo.config();
            let size = config.pack_target_size as usize + config.chunker.max_size as usize;
            let hint = size + (1 << 20);
            Some(
                self.shared
                    .backend
                    .stage(Kind::Pack, Temperature::Cold, hint)?,
            )
        };
        Ok(DataPack {
            staged,
            hasher: ObjectHasher::new(),
            layout: PackLayout::new(),
        })
    }

    fn is_full(&self, len: u64, count: usize) -> bool {
        len >= u64::from(self.repo.config().pack_target_size)
            || count >= crate::format::MAX_PACK_ENTRIES
    }

    fn check_failed(&self) -> Result<()> {
        match lock(&self.shared.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn ship_data(&self, pack: DataPack) -> Result<()> {
        if pack.layout.is_empty() {
            return Ok(());
        }
        let (staged, pack, size) = pack.finish(&self.shared.meta)?;
        self.count_pack(size);
        match staged {
            Some(staged) => self.send(Upload {
                body: Body::Data(staged),
                pack,
            }),
            None => Ok(()), // dry run
        }
    }

    fn ship_tree(&self, builder: PackBuilder) -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let (bytes, entries) = builder.finish(&self.shared.meta);
        let pack = IndexPack {
            pack: Id::of_object(&bytes),
            entries,
        };
        self.count_pack(bytes.len() as u64);
        if self.opts.dry_run {
            return Ok(());
        }
        self.send(Upload {
            body: Body::Tree(bytes),
            pack,
        })
    }

    fn count_pack(&self, size: u64) {
        let mut s = lock(&self.stats);
        s.packs += 1;
        s.bytes += size;
    }

    fn send(&self, up: Upload) -> Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| Error::Invalid("pack writer already finished".into()))?;
        tx.send(up)
            .map_err(|_| Error::Invalid("pack uploaders stopped".into()))?;
        self.check_failed()
    }

    /// Upload what is left, wait for every upload and write the final index object.
    /// Only after this returns may a snapshot reference the blobs.
    pub fn finish(mut self) -> Result<WriterStats> {
        if let Some(data) = lock(&self.data).take() {
            self.ship_data(data)?;
        }
        let tree = std::mem::take(&mut *lock(&self.tree));
        self.ship_tree(tree)?;
        self.tx = None;
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                return Err(Error::Invalid("a pack uploader thread panicked".into()));
            }
        }
        self.check_failed()?;
        let rest = std::mem::take(&mut *lock(&self.shared.uploaded));
        if !rest.is_empty() {
            write_index_object(
                &*self.shared.backend,
                &self.shared.meta,
                &self.shared.index,
                rest,
                vec![],
            )?;
        }
        Ok(*lock(&self.stats))
    }
}

impl Drop for PackWriter<'_> {
    fn drop(&mut self) {
        // On an error path: stop the uploaders; what they stored stays pending for the next run.
        // A data pack still open is dropped with its staged storage (a temporary file).
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;
    use crate::crypto::MasterKey;
    use crate::format::keyfile::KdfParams;
    use crate::format::pack::read_entries;
    use crate::repo::{InitOptions, OpenOptions};

    /// A streamed data pack is a valid pack, named by the hash of its bytes, and lays its blobs
    /// out as the in-memory builder does.
    #[test]
    fn streamed_data_pack_matches_the_in_memory_builder() {
        let keys = MasterKey::generate().subkeys();
        let meta = &keys.meta;
        let blobs: Vec<SealedBlob> = (0..5u8)
            .map(|i| SealedBlob {
                kind: BlobKind::Data,
                id: Id([i; 32]),
                sealed: vec![i; 41 + 1000 * usize::from(i)],
                raw_length: 7 * u32::from(i),
            })
            .collect();
        let mem = MemBackend::new();
        let mut pack = DataPack {
            staged: Some(mem.stage(Kind::Pack, Temperature::Cold, 0).unwrap()),
            hasher: ObjectHasher::new(),
            layout: PackLayout::new(),
        };
        let mut builder = PackBuilder::new();
        for b in &blobs {
            pack.add(b).unwrap();
            builder.add(b.kind, b.id, &b.sealed, b.raw_length);
        }
        let (staged, index_pack, size) = pack.finish(meta).unwrap();
        let name = index_pack.pack.to_hex();
        mem.commit(staged.unwrap(), &name).unwrap();
        let bytes = mem.get(Kind::Pack, &name).unwrap();
        assert_eq!(Id::of_object(&bytes), index_pack.pack);
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(read_entries(&bytes, meta).unwrap(), index_pack.entries);

        // The in-memory builder: the same entries and data section; the sealed headers differ
        // only by their random nonces, so they have the same length.
        let (built, entries) = builder.finish(meta);
        assert_eq!(entries, index_pack.entries);
        assert_eq!(built.len(), bytes.len());
        let data_end: usize = blobs.iter().map(|b| b.sealed.len()).sum();
        assert_eq!(built[..data_end], bytes[..data_end]);
        assert_eq!(built[built.len() - 12..], bytes[bytes.len() - 12..]);
    }

    /// A claim lasts only until the local index records the blob's pack; from then on the
    /// index answers for the blob, so the claims held stay bounded by the packs in flight.
    #[test]
    fn claims_are_dropped_once_the_index_records_their_pack() {
        let mem = Arc::new(MemBackend::new());
        let cache = tempfile::tempdir().unwrap();
        let init = InitOptions {
            kdf: KdfParams {
                m_cost: 8 * 1024,
                t_cost: 1,
                p_cost: 1,
            },
            pack_target_size: 1 << 20,
            ..Default::default()
        };
        Repository::init(mem.clone(), b"pw", &init).unwrap();
        let open = OpenOptions {
            cache_dir: Some(cache.path().to_path_buf()),
        };
        let repo = Repository::open(mem, b"pw", &open).unwrap();
        let w = repo.writer(WriterOptions::default());
        // 48 incompressible blobs of 64 KiB: at least two full 1 MiB packs are shipped.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let blobs: Vec<Vec<u8>> = (0..48)
            .map(|_| {
                (0..64 << 10)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect();
        let first = w.add(BlobKind::Data, &blobs[0]).unwrap().0;
        for b in &blobs[1..] {
            assert!(w.add(BlobKind::Data, b).unwrap().1);
        }
        // Uploads run on their own threads: wait for the shipped packs to be recorded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while lock(&w.shared.claims).held.len() > 16 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let held = lock(&w.shared.claims).held.len();
        assert!(
            held <= 16,
            "{held} claims held, only the open pack's should be"
        );
        assert!(repo.index().lookup(&first).unwrap().is_some());
        assert_eq!(w.add(BlobKind::Data, &blobs[0]).unwrap(), (first, false));
        let stats = w.finish().unwrap();
        assert_eq!(stats.blobs, 48);
    }
}
