//! The backup walk: builds one tree per directory bottom-up, reusing the parent snapshot's
//! content lists for unchanged files, and feeds new chunks to the seal workers.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{DirEntry, File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{bounded, Receiver, Sender};
use rayon::prelude::*;

use super::meta::{self, Names};
use super::{BackupOptions, BackupSummary, Source};
use crate::chunker::ChunkBuffer;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind, Timestamp, Tree};
use crate::id::{BlobKind, Id};
use crate::ops::filter::PatternSet;
use crate::progress::Progress;
use crate::repo::writer::PackWriter;
use crate::repo::Repository;

/// An absolute, lexically cleaned path (symlinks are not resolved: they are backed up as links).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

/// New chunks travel to the seal workers in batches: one channel hand-off per small file
/// cost more (futex wake-ups, context switches) than sealing it did.
type Batch = Vec<(Id, Vec<u8>)>;
/// A batch is sent once it holds this many bytes or chunks (a large file's batch is one chunk).
const BATCH_BYTES: usize = 256 << 10;
const BATCH_CHUNKS: usize = 256;

/// Sealing workers: compress + encrypt new chunks and hand them to the pack writer.
fn seal_worker(
    codec: &Codec,
    writer: &PackWriter<'_>,
    rx: Receiver<Batch>,
    failure: &Mutex<Option<Error>>,
) {
    for batch in rx {
        for (id, plain) in batch {
            let blob = codec.seal(BlobKind::Data, id, &plain);
            if let Err(e) = writer.add_sealed(blob) {
                let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert(e);
                return;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    repo: &Repository,
    writer: &PackWriter<'_>,
    source: Source<'_>,
    paths: &[PathBuf],
    parent_tree: Option<Id>,
    opts: &BackupOptions,
    excludes: &PatternSet,
    progress: &dyn Progress,
    summary: &mut BackupSummary,
) -> Result<Id> {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    // Folders are walked in parallel: on many small files the walk's stat, open and read calls,
    // not sealing, are the limit.
    let walkers = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("walk-{i}"))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start walker threads: {e}")))?;
    let failure = Mutex::new(None);
    // One batch may wait in the channel: with a rendezvous (no slot) a seal worker that
    // finished idled while the walker cut the next chunk, 10-15% of the first backup of a
    // large file. More slots would only hold memory, as reading outruns sealing. New chunks in
    // flight are the batches in the seal workers' hands, the one in the channel, one full batch
    // per walker thread waiting to hand over and the one being filled: each about BATCH_BYTES
    // (at most BATCH_BYTES plus one chunk).
    let (tx, rx) = bounded::<Batch>(1);
    let scanning = AtomicBool::new(true);
    let result = std::thread::scope(|scope| {
        for _ in 0..threads {
            let rx = rx.clone();
            let failure = &failure;
            scope.spawn(move || seal_worker(repo.codec(), writer, rx, failure));
        }
        drop(rx);
        if progress.wants_totals() {
            if let Source::Paths(_) = source {
                let scanning = &scanning;
                scope.spawn(move || scan_totals(paths, excludes, scanning, progress));
            }
        }
        let walker = Walker {
            repo,
            writer,
            opts,
            excludes,
            progress,
            counts: Counts::default(),
            warnings: Mutex::new(Vec::new()),
            tx,
            batch: Mutex::new((Vec::new(), 0)),
            names: Mutex::new(Names::default()),
            buffers: Mutex::new(Vec::new()),
        };
        let r = match source {
            Source::Paths(_) => walkers.install(|| walker.save_roots(paths, parent_tree)),
            Source::Stdin(reader) => walkers.install(|| walker.save_stdin(reader, &paths[0])),
        };
        let r = r.and_then(|id| walker.send_batch().map(|()| id));
        walker.finish(summary); // drops the sender: workers drain and stop
        scanning.store(false, Ordering::Relaxed);
        r
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    result
}

/// The virtual folders above the backed-up paths (`/home` for `/home/a`).
#[derive(Default)]
struct VirtualDir {
    children: BTreeMap<OsString, VirtualEntry>,
}

enum VirtualEntry {
    Dir(VirtualDir),
    Target,
}

/// The walk's counters, shared by the walker threads.
#[derive(Default)]
struct Counts {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    files_unreadable: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    bytes_read: AtomicU64,
    bytes_total: AtomicU64,
    chunks_new: AtomicU64,
    chunks_deduplicated: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Walker<'a, 'w> {
    repo: &'a Repository,
    writer: &'a PackWriter<'w>,
    opts: &'a BackupOptions,
    excludes: &'a PatternSet,
    progress: &'a dyn Progress,
    counts: Counts,
    warnings: Mutex<Vec<String>>,
    tx: Sender<Batch>,
    /// New chunks not yet handed to the seal workers, and their bytes.
    batch: Mutex<(Batch, usize)>,
    names: Mutex<Names>,
    /// Chunker read buffers, one per thread reading a file at the moment.
    buffers: Mutex<Vec<ChunkBuffer>>,
}

impl Walker<'_, '_> {
    fn warn(&self, path: &Path, e: impl std::fmt::Display) {
        let msg = format!("{}: {e}", path.display());
        self.progress.warn(&msg);
        lock(&self.warnings).push(msg);
    }

    /// Move the counters and warnings into the summary; drops the walker (and its sender).
    fn finish(self, summary: &mut BackupSummary) {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        summary.files_new += get(&c.files_new);
        summary.files_changed += get(&c.files_changed);
        summary.files_unmodified += get(&c.files_unmodified);
        summary.files_unreadable += get(&c.files_unreadable);
        summary.dirs_new += get(&c.dirs_new);
        summary.dirs_changed += get(&c.dirs_changed);
        summary.dirs_unmodified += get(&c.dirs_unmodified);
        summary.bytes_read += get(&c.bytes_read);
        summary.bytes_total += get(&c.bytes_total);
        summary.chunks_new += get(&c.chunks_new);
        summary.chunks_deduplicated += get(&c.chunks_deduplicated);
        let mut warnings = self
            .warnings
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        // Threads finish in any order; a sorted list reads the same on every run.
        warnings.sort();
        summary.warnings.extend(warnings);
    }

    fn save_roots(&self, paths: &[PathBuf], parent_tree: Option<Id>) -> Result<Id> {
        let mut root = VirtualDir::default();
        for p in paths {
            std::fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
            let mut dir = &mut root;
            let comps: Vec<OsString> = p
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    _ => None,
                })
                .collect();
            if comps.is_empty() {
                return Err(Error::Invalid(
                    "backing up / as a whole is not supported; name its folders".into(),
                ));
            }
            for (i, c) in comps.iter().enumerate() {
                if i + 1 == comps.len() {
                    dir.children.insert(c.clone(), VirtualEntry::Target);
                } else {
                    let entry = dir
                        .children
                        .entry(c.clone())
                        .or_insert_with(|| VirtualEntry::Dir(VirtualDir::default()));
                    match entry {
                        VirtualEntry::Dir(d) => dir = d,
                        VirtualEntry::Target => break, // an ancestor is backed up whole already
                    }
                }
            }
        }
        let parent = self.load_parent(parent_tree);
        self.save_virtual(&root, Path::new("/"), parent.as_ref(), parent_tree)
    }

    fn load_parent(&self, id: Option<Id>) -> Option<Tree> {
        let id = id?;
        match self.repo.load_tree(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                self.warn(
                    Path::new("(parent snapshot)"),
                    format!("cannot read tree {id}: {e}; files will be re-read"),
                );
                None
            }
        }
    }

    fn save_virtual(
        &self,
        dir: &VirtualDir,
        path: &Path,
        parent: Option<&Tree>,
        old_id: Option<Id>,
    ) -> Result<Id> {
        let mut tree = Tree::default();
        for (name, entry) in &dir.children {
            let child = path.join(name);
            let old = parent.and_then(|t| t.find(name.as_bytes()));
            match entry {
                VirtualEntry::Target => {
                    let root_dev = std::fs::symlink_metadata(&child).ok().map(|m| m.dev());
                    if let Some(node) =
                        self.save_entry(&child, name.as_bytes().to_vec(), old, root_dev, None)?
                    {
                        tree.nodes.push(node);
                    }
                }
                VirtualEntry::Dir(sub) => {
                    let m = std::fs::symlink_metadata(&child).map_err(|e| Error::io(&child, e))?;
                    let mut node = meta::node_from_metadata(
                        name.as_bytes().to_vec(),
                        &m,
                        &mut lock(&self.names),
                    );
                    node.kind = NodeKind::Dir;
                    let old_subtree = old.and_then(|n| n.subtree);
                    let old_tree = self.load_parent(old_subtree);
                    node.subtree =
                        Some(self.save_virtual(sub, &child, old_tree.as_ref(), old_subtree)?);
                    tree.nodes.push(node);
                }
            }
        }
        self.store_tree(tree, old_id)
    }

    /// Store a tree blob; counts the directory as new, changed or unmodified against `old`.
    fn store_tree(&self, mut tree: Tree, old: Option<Id>) -> Result<Id> {
        let bytes = tree.encode();
        let (id, _) = self.writer.add(BlobKind::Tree, &bytes)?;
        let c = &self.counts;
        match old {
            Some(o) if o == id => bump(&c.dirs_unmodified, 1),
            Some(_) => bump(&c.dirs_changed, 1),
            None => bump(&c.dirs_new, 1),
        }
        Ok(id)
    }

    /// Back up one filesystem entry; None when it is excluded or unreadable. `root_dev` is the
    /// device of the backed-up path this entry is under (for --one-file-system).
    fn save_entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        old: Option<&Node>,
        root_dev: Option<u64>,
        entry: Option<&DirEntry>,
    ) -> Result<Option<Node>> {
        if self.excludes.matches(path) {
            return Ok(None);
        }
        let c = &self.counts;
        // A folder entry is lstat'ed relative to the open folder: no walk of the whole path.
        let m = match entry.map_or_else(|| std::fs::symlink_metadata(path), DirEntry::metadata) {
            Ok(m) => m,
            Err(e) => {
                bump(&c.files_unreadable, 1);
                self.warn(path, e);
                return Ok(None);
            }
        };
        let mut node = meta::node_from_metadata(name, &m, &mut lock(&self.names));
        node.xattrs = match old {
            // Changing an xattr changes the ctime: same inode and ctime, same xattrs.
            Some(o) if !self.opts.force && meta::same_inode_state(o, &node) => o.xattrs.clone(),
            _ => meta::read_xattrs(path),
        };
        match node.kind {
            NodeKind::Dir => {
                if self.opts.one_file_system && root_dev.is_some_and(|d| d != m.dev()) {
                    return Ok(None);
                }
                if self
                    .opts
                    .exclude_if_present
                    .iter()
                    .any(|f| path.join(f).symlink_metadata().is_ok())
                {
                    return Ok(None);
                }
                let old_subtree = old
                    .filter(|o| o.kind == NodeKind::Dir)
                    .and_then(|o| o.subtree);
                match self.save_dir(path, old_subtree, root_dev)? {
                    Some(id) => node.subtree = Some(id),
                    None => return Ok(None),
                }
            }
            NodeKind::File => {
                bump(&c.bytes_total, node.size);
                match old {
                    Some(o) if !self.opts.force && meta::unchanged(o, &node) => {
                        node.content = o.content.clone();
                        bump(&c.files_unmodified, 1);
                        self.progress.add_item(1);
                        self.progress.add_bytes(node.size);
                    }
                    _ => match self.read_file(path) {
                        Ok((content, size)) => {
                            // The walk counted the size lstat gave; count what was read.
                            c.bytes_total.fetch_sub(node.size, Ordering::Relaxed);
                            bump(&c.bytes_total, size);
                            node.content = content;
                            node.size = size;
                            if old.is_some() {
                                bump(&c.files_changed, 1);
                            } else {
                                bump(&c.files_new, 1);
                            }
                            self.progress.add_item(1);
                        }
                        Err(e) => {
                            bump(&c.files_unreadable, 1);
                            self.warn(path, e);
                            return Ok(None);
                        }
                    },
                }
            }
            NodeKind::Symlink => match std::fs::read_link(path) {
                Ok(t) => node.link_target = t.into_os_string().into_vec(),
                Err(e) => {
                    bump(&c.files_unreadable, 1);
                    self.warn(path, e);
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some(node))
    }

    fn save_dir(&self, path: &Path, old: Option<Id>, root_dev: Option<u64>) -> Result<Option<Id>> {
        let mut entries: Vec<(Vec<u8>, DirEntry)> = match std::fs::read_dir(path) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| (e.file_name().into_vec(), e))
                .collect(),
            Err(e) => {
                bump(&self.counts.files_unreadable, 1);
                self.warn(path, e);
                return Ok(None);
            }
        };
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let old_tree = self.load_parent(old);
        // Entries in parallel (rayon steals across folders too), each result written to its
        // slot in sorted order: a plain `collect` gathers lists of pieces and then copies them
        // into one vector, twice the memory of a large folder's nodes at its peak. After an
        // error (the repository failed) the rest of the folder is skipped, as `collect` did.
        let failed = AtomicBool::new(false);
        let mut saved = Vec::new();
        entries
            .into_par_iter()
            .map(|(name, entry)| {
                if failed.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let child = path.join(std::ffi::OsStr::from_bytes(&name));
                let old_node = old_tree.as_ref().and_then(|t| t.find(&name));
                let node = self.save_entry(&child, name, old_node, root_dev, Some(&entry));
                if node.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                node
            })
            .collect_into_vec(&mut saved);
        drop(old_tree);
        let tree = Tree {
            nodes: saved
                .into_iter()
                .filter_map(Result::transpose)
                .collect::<Result<_>>()?,
        };
        self.store_tree(tree, old).map(Some)
    }

    /// Read and chunk one file; new chunks go to the seal workers. Returns (ids, bytes read).
    fn read_file(&self, path: &Path) -> Result<(Vec<Id>, u64)> {
        self.progress.set_current(&path.display().to_string());
        let file = open_noatime(path).map_err(|e| Error::io(path, e))?;
        self.chunk_stream(file, path)
    }

    fn chunk_stream<R: Read>(&self, reader: R, label: &Path) -> Result<(Vec<Id>, u64)> {
        let mut ids = Vec::new();
        let mut buf = lock(&self.buffers).pop().unwrap_or_default();
        let c = &self.counts;
        let mut hasher = self.repo.codec().keys().blob_hasher();
        let r = self
            .repo
            .chunker()
            .for_each_chunk(reader, &mut buf, &mut hasher, |data, id| {
                let len = data.len() as u64;
                bump(&c.bytes_read, len);
                self.progress.add_bytes(len);
                if self.writer.claim(&id)? {
                    bump(&c.chunks_new, 1);
                    // Only new chunks are copied out of the read buffer.
                    self.queue(id, data.to_vec())?;
                } else {
                    bump(&c.chunks_deduplicated, 1);
                }
                ids.push(id);
                Ok(())
            });
        lock(&self.buffers).push(buf);
        match r {
            Ok(total) => Ok((ids, total)),
            Err(ChunkError::Read(e)) => Err(Error::io(label, e)),
            Err(ChunkError::Other(e)) => Err(e),
        }
    }

    /// Add a new chunk to the batch; a full batch goes to the seal workers.
    fn queue(&self, id: Id, plain: Vec<u8>) -> Result<()> {
        let full = {
            let mut b = lock(&self.batch);
            b.1 += plain.len();
            b.0.push((id, plain));
            if b.1 >= BATCH_BYTES || b.0.len() >= BATCH_CHUNKS {
                b.1 = 0;
                std::mem::take(&mut b.0)
            } else {
                Vec::new()
            }
        };
        self.send(full)
    }

    /// Hand the pending chunks to the seal workers.
    fn send_batch(&self) -> Result<()> {
        let batch = {
            let mut b = lock(&self.batch);
            b.1 = 0;
            std::mem::take(&mut b.0)
        };
        self.send(batch)
    }

    fn send(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // A send fails only when every worker stopped on an error, reported by the caller.
        self.tx
            .send(batch)
            .map_err(|_| Error::Invalid("seal workers stopped".into()))
    }

    fn save_stdin(&self, reader: &mut (dyn Read + Send), path: &Path) -> Result<Id> {
        let name = path
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_else(|| b"stdin".to_vec());
        let (content, size) = self.chunk_stream(reader, Path::new("(stdin)"))?;
        let now = jiff::Timestamp::now();
        let mut node = Node::new(name, NodeKind::File);
        node.mode = 0o600;
        node.mtime = Timestamp {
            secs: now.as_second(),
            nanos: now.subsec_nanosecond().max(0) as u32,
        };
        node.ctime = node.mtime;
        node.atime = node.mtime;
        node.size = size;
        node.content = content;
        // SAFETY: getuid/getgid cannot fail.
        node.uid = unsafe { libc::getuid() };
        node.gid = unsafe { libc::getgid() };
        {
            let mut names = lock(&self.names);
            node.user = names.user(node.uid);
            node.group = names.group(node.gid);
        }
        bump(&self.counts.bytes_total, size);
        bump(&self.counts.files_new, 1);
        self.store_tree(Tree { nodes: vec![node] }, None)
    }
}

/// Count files and bytes ahead of the walk so a progress bar can show an ETA; stops early
/// when the walk is done.
fn scan_totals(
    paths: &[PathBuf],
    excludes: &PatternSet,
    go_on: &AtomicBool,
    progress: &dyn Progress,
) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if !go_on.load(Ordering::Relaxed) {
            return;
        }
        if excludes.matches(&p) {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        } else if m.is_file() {
            files += 1;
            bytes += m.len();
        }
    }
    progress.set_total(files, bytes);
}

/// Open for reading without updating atime where the kernel allows it (owner or root).
fn open_noatime(path: &Path) -> std::io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path),
        Err(e) => Err(e),
    }
}

/// Errors while chunking a file: reading it (reported with its path) or storing its chunks.
enum ChunkError {
    Read(std::io::Error),
    Other(Error),
}

impl From<std::io::Error> for ChunkError {
    fn from(e: std::io::Error) -> Self {
        ChunkError::Read(e)
    }
}

impl From<Error> for ChunkError {
    fn from(e: Error) -> Self {
        ChunkError::Other(e)
    }
}
