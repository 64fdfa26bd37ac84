//! Fetching for restore: chunks grouped by pack, adjacent ones merged into one ranged read,
//! packs fetched by several threads; each chunk is verified, then written to all its places.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::apply::{apply_metadata_to, create_file, written_once};
use super::{Locations, Placements, Planned};
use crate::backend::Kind;
use crate::error::{Error, Result};
use crate::id::{BlobKind, Id};
use crate::index::BlobLocation;
use crate::progress::Progress;
use crate::repo::Repository;

/// How wanted blobs of a pack are grouped into ranged reads: gaps up to `gap` bytes are read
/// through rather than split, and no read spans more than `span` bytes.
#[derive(Clone, Copy)]
struct Merge {
    gap: u64,
    span: u64,
}

impl Merge {
    /// Where every request is billed (S3): few large reads.
    const BILLED: Merge = Merge {
        gap: 1 << 20,
        span: 32 << 20,
    };
    /// A local disk: reads of about a blob each, so a thread holds a megabyte or two, not a
    /// pack (4 MiB spans measured 7 MiB more peak on usr and small files, and no faster).
    const CHEAP: Merge = Merge {
        gap: 64 << 10,
        span: 1 << 20,
    };
}
/// Open files kept per thread.
const FD_CACHE: usize = 128;

#[derive(Default)]
pub(crate) struct Fetched {
    pub chunks: u64,
    pub bytes: u64,
    /// Metadata that could not be set on files written in one go.
    pub warnings: Vec<String>,
}

/// What the fetch needs to know about the batch it writes.
pub(crate) struct Batch<'a> {
    pub target: &'a Path,
    pub entries: &'a [Planned],
    pub placements: &'a Placements,
    pub locations: &'a Locations,
    /// Whether ownership is restored (on files written in one go).
    pub chown: bool,
    /// Whether files of several chunks are also opened with `O_DIRECT`.
    pub direct: bool,
}

type PackWork = (Id, Vec<(BlobLocation, Id)>);

pub(crate) fn fetch_all(
    repo: &Repository,
    batch: &Batch,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let mut by_pack: BTreeMap<Id, Vec<(BlobLocation, Id)>> = BTreeMap::new();
    for (id, loc) in batch.locations {
        by_pack.entry(loc.pack).or_default().push((*loc, *id));
    }
    let work: Vec<PackWork> = by_pack
        .into_iter()
        .map(|(p, mut v)| {
            v.sort_by_key(|(l, _)| l.offset);
            (p, v)
        })
        .collect();
    let merge = if repo.backend().cheap_ranges() {
        Merge::CHEAP
    } else {
        Merge::BILLED
    };
    let next = AtomicUsize::new(0);
    let total = Mutex::new(Fetched::default());
    let errors = Mutex::new(Vec::<String>::new());
    let fail = |e: Error| {
        errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.to_string())
    };
    std::thread::scope(|s| {
        // Two runs may wait for the writer (one measured 8-11% slower on the image and a
        // zero-heavy disk image: the fetch threads stalled on each direct write; none 15%
        // slower), and the writer sends used buffers back for reuse: at most fetch threads + 3
        // run buffers exist.
        let (to_writer, runs) = bounded::<Run>(2);
        let (recycle, used) = unbounded::<Vec<u8>>();
        s.spawn(move || write_runs(runs, recycle, batch.direct, fail));
        let (next, work, total) = (&next, &work, &total);
        for _ in 0..threads.min(work.len()).max(1) {
            let gather = Gather::new(to_writer.clone(), used.clone());
            s.spawn(move || {
                let mut own = ThreadState {
                    scratch: Vec::new(),
                    gather,
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((pack, blobs)) = work.get(i) else {
                        break;
                    };
                    match fetch_pack(repo, batch, pack, blobs, merge, &mut own, progress) {
                        Ok(f) => {
                            let mut t = total.lock().unwrap_or_else(|p| p.into_inner());
                            t.chunks += f.chunks;
                            t.bytes += f.bytes;
                            t.warnings.extend(f.warnings);
                        }
                        Err(e) => fail(e),
                    }
                }
                own.gather.flush();
            });
        }
        drop(to_writer);
    });
    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    if !errors.is_empty() {
        return Err(Error::Invalid(format!(
            "restore incomplete, damaged data:\n  {}",
            errors.join("\n  ")
        )));
    }
    Ok(total.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Group sorted blobs into ranges worth one read each.
fn ranges(blobs: &[(BlobLocation, Id)], merge: Merge) -> Vec<&[(BlobLocation, Id)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=blobs.len() {
        let split = match (blobs.get(i), blobs.get(start)) {
            (Some((next, _)), Some((first, _))) => {
                let prev = &blobs[i - 1].0;
                let gap = u64::from(next.offset)
                    .saturating_sub(u64::from(prev.offset) + u64::from(prev.length));
                let span =
                    u64::from(next.offset) + u64::from(next.length) - u64::from(first.offset);
                gap > merge.gap || span > merge.span
            }
            _ => true,
        };
        if split {
            out.push(&blobs[start..i]);
            start = i;
        }
    }
    out
}

fn fetch_pack(
    repo: &Repository,
    batch: &Batch,
    pack: &Id,
    blobs: &[(BlobLocation, Id)],
    merge: Merge,
    own: &mut ThreadState,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let mut done = Fetched::default();
    let name = pack.to_hex();
    for group in ranges(blobs, merge) {
        let (Some((first, _)), Some((last, _))) = (group.first(), group.last()) else {
            continue;
        };
        let start = u64::from(first.offset);
        let end = u64::from(last.offset) + u64::from(last.length);
        let mut bytes = repo
            .backend()
            .get_range(Kind::Pack, &name, start, end - start)?;
        for (loc, id) in group {
            let from = (u64::from(loc.offset) - start) as usize;
            // Opened where it lies in the read: no copy of the blob, no buffer per chunk.
            let sealed = bytes
                .get_mut(from..from + loc.length as usize)
                .ok_or_else(|| Error::damaged("pack", &name, "short read"))?;
            let opened = repo
                .codec()
                .open_in_place(BlobKind::Data, id, sealed, &mut own.scratch);
            let plain = opened.map_err(|e| {
                let who: Vec<String> = batch
                    .placements
                    .get(id)
                    .into_iter()
                    .flatten()
                    .map(|(i, _)| batch.entries[*i].path.display().to_string())
                    .collect();
                Error::damaged(
                    "pack",
                    &name,
                    format!("blob {id}: {e} (affects {})", who.join(", ")),
                )
            })?;
            if plain.len() != loc.raw_length as usize {
                return Err(Error::damaged(
                    "index",
                    id.to_hex(),
                    format!(
                        "blob is {} bytes, the index says {}",
                        plain.len(),
                        loc.raw_length
                    ),
                ));
            }
            for (i, offset) in batch.placements.get(id).into_iter().flatten() {
                let entry = &batch.entries[*i];
                let path = rel(batch.target, &entry.path);
                if written_once(entry) {
                    let file = create_file(&path, 0)?;
                    write_whole(&file, plain).map_err(|e| Error::io(&path, e))?;
                    if let Err(e) = apply_metadata_to(&file, &path, &entry.node, batch.chown) {
                        done.warnings.push(e.to_string());
                    }
                } else {
                    own.gather.add(&path, *offset, plain);
                }
                done.bytes += plain.len() as u64;
                progress.add_bytes(plain.len() as u64);
            }
            done.chunks += 1;
        }
    }
    Ok(done)
}

/// Write all of a new, empty file's content. All-zero blocks stay holes; when the last block is
/// one, the file is extended to its length.
fn write_whole(file: &File, data: &[u8]) -> std::io::Result<()> {
    write_sparse(file, None, data, 0)?;
    if data.last() == Some(&0) {
        file.set_len(data.len() as u64)?;
    }
    Ok(())
}

/// Block of sparse writes (all-zero blocks stay holes) and alignment of direct writes (file
/// offset, length and memory address): 4 KiB is a multiple of every common logical block size.
const BLOCK: usize = 4096;

/// A file written chunk by chunk: its descriptor and, where the file system allows, a second
/// one opened with `O_DIRECT`. Through the page cache, a large restore costs more kernel time
/// than the data takes to reach the disk: every page is allocated, filled, and written back
/// later (2 GiB image on this VM: 8-9 s of system time, against 0.4 s direct).
struct Target {
    file: File,
    direct: Option<File>,
}

/// Consecutive bytes of one file in a buffer whose first aligned byte stands for a block-aligned
/// file offset, so that the aligned middle of what it holds can go out with `O_DIRECT` straight
/// from it, without another copy.
struct Run {
    buf: Vec<u8>,
    /// `buf[skip]` is the first byte aligned to `BLOCK` in memory.
    skip: usize,
    path: PathBuf,
    /// The file offset `buf[skip]` stands for, a multiple of `BLOCK`.
    at: u64,
    /// The bytes held are `buf[skip + lead..skip + end]`.
    lead: usize,
    end: usize,
}

impl Run {
    /// An empty run at `offset` of `path`, in `buf` if it is a used run buffer.
    fn new(mut buf: Vec<u8>, path: &Path, offset: u64) -> Run {
        if buf.len() != Gather::SIZE + BLOCK {
            buf = vec![0; Gather::SIZE + BLOCK];
        }
        let lead = (offset % BLOCK as u64) as usize;
        Run {
            skip: buf.as_ptr().align_offset(BLOCK).min(BLOCK),
            buf,
            path: path.to_path_buf(),
            at: offset - lead as u64,
            lead,
            end: lead,
        }
    }

    /// How many bytes at `offset` of `path` this run takes: they must follow what it holds.
    fn room_for(&self, path: &Path, offset: u64) -> usize {
        if self.path == path && self.at + self.end as u64 == offset {
            Gather::SIZE - self.end
        } else {
            0
        }
    }

    fn push(&mut self, data: &[u8]) {
        let from = self.skip + self.end;
        self.buf[from..from + data.len()].copy_from_slice(data);
        self.end += data.len();
    }

    /// Write what is held; returns the bytes written directly.
    fn write(&self, files: &mut FileCache, direct: bool) -> Result<usize> {
        let t = files.get(&self.path, direct)?;
        let held = &self.buf[self.skip + self.lead..self.skip + self.end];
        write_sparse(&t.file, t.direct.as_ref(), held, self.at + self.lead as u64)
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// The writer thread of a restore: writes every run it receives (see `Gather`) and sends its
/// buffer back for reuse; returns the bytes it wrote directly.
fn write_runs(
    runs: Receiver<Run>,
    recycle: Sender<Vec<u8>>,
    direct: bool,
    fail: impl Fn(Error),
) -> usize {
    let (mut files, mut direct_bytes) = (FileCache::default(), 0);
    for run in runs {
        match run.write(&mut files, direct) {
            Ok(n) => direct_bytes += n,
            Err(e) => fail(e),
        }
        let _ = recycle.send(run.buf);
    }
    direct_bytes
}

/// The chunks of a pack mostly follow each other in their file: a fetch thread gathers them
/// into runs, so that they reach the file in one write instead of one or more per chunk, and
/// hands each run to the writer thread (`write_runs`), so that it goes on decompressing while
/// the write waits for the disk (a direct write into a new file holds the file's lock until
/// the disk is done).
struct Gather {
    run: Option<Run>,
    to_writer: Sender<Run>,
    /// Buffers of written runs, back from the writer.
    used: Receiver<Vec<u8>>,
}

impl Gather {
    /// The bytes a run holds at most, a multiple of `BLOCK`: 2 MiB restored the image 8% faster
    /// than 1 MiB for 6 MiB more peak, and 4 MiB no faster for 13 MiB more.
    const SIZE: usize = 2 << 20;

    fn new(to_writer: Sender<Run>, used: Receiver<Vec<u8>>) -> Self {
        Gather {
            run: None,
            to_writer,
            used,
        }
    }

    /// Hold `data`, bound for `path` at `offset`; a run it does not continue is handed on
    /// first, and so is a full one. All-zero data is skipped: the file was created at its full
    /// length.
    fn add(&mut self, path: &Path, mut offset: u64, mut data: &[u8]) {
        if is_zero(data) {
            return;
        }
        while !data.is_empty() {
            let room = self.run.as_ref().map_or(0, |r| r.room_for(path, offset));
            match &mut self.run {
                Some(run) if room > 0 => {
                    let n = room.min(data.len());
                    run.push(&data[..n]);
                    data = &data[n..];
                    offset += n as u64;
                }
                _ => {
                    let buf = self.flush();
                    self.run = Some(Run::new(buf, path, offset));
                }
            }
        }
    }

    /// Hand the run held to the writer; returns a buffer for the next run (a used one, when
    /// there is one).
    fn flush(&mut self) -> Vec<u8> {
        if let Some(run) = self.run.take() {
            // The writer only stops when every sender is gone; a failed send means it
            // panicked, and the restore then fails when the scope ends.
            let _ = self.to_writer.send(run);
        }
        self.used.try_recv().unwrap_or_default()
    }
}

/// Whether every byte is zero (compared a block at a time, with memcmp).
fn is_zero(data: &[u8]) -> bool {
    data.chunks(BLOCK).all(|b| b == &ZEROS[..b.len()])
}

static ZEROS: [u8; BLOCK] = [0; BLOCK];

/// Write a run of bytes at `at`: through the page cache, or, given a direct descriptor and a
/// run that lies in memory aligned as in the file, its aligned middle straight to the disk in
/// one write and only its unaligned ends (parts of the blocks shared with the neighbouring
/// chunks) through the page cache. Returns the bytes written directly.
fn write_run(file: &File, direct: Option<&File>, run: &[u8], at: u64) -> std::io::Result<usize> {
    let head = ((BLOCK - (at as usize % BLOCK)) % BLOCK).min(run.len());
    let body = (run.len() - head) / BLOCK * BLOCK;
    let aligned = (run.as_ptr() as usize + head).is_multiple_of(BLOCK);
    let Some(direct) = direct.filter(|_| aligned && body > 0) else {
        file.write_all_at(run, at)?;
        return Ok(0);
    };
    file.write_all_at(&run[..head], at)?;
    let (middle, pos) = (&run[head..head + body], at + head as u64);
    let direct_bytes = match direct.write_at(middle, pos) {
        Ok(n) if n == body => n,
        // A short or refused direct write (a file system that takes O_DIRECT at open but not
        // for this write): the page cache takes the rest.
        Ok(n) => {
            file.write_all_at(&middle[n..], pos + n as u64)?;
            n
        }
        Err(_) => {
            file.write_all_at(middle, pos)?;
            0
        }
    };
    file.write_all_at(&run[head + body..], at + (head + body) as u64)?;
    Ok(direct_bytes)
}

/// Write `data` at `offset`, skipping all-zero blocks (the file was pre-sized, so they stay
/// holes); consecutive non-zero blocks go out in one write. Returns the bytes written directly.
fn write_sparse(
    file: &File,
    direct: Option<&File>,
    data: &[u8],
    offset: u64,
) -> std::io::Result<usize> {
    // Compared against ZEROS with memcmp, many bytes at a time; a byte-wise loop showed in
    // profiles.
    let (mut pos, mut direct_bytes) = (0, 0);
    let mut run_start: Option<usize> = None;
    while pos < data.len() {
        // Blocks end on file-offset multiples of BLOCK, so holes line up with filesystem blocks.
        let end = (pos + BLOCK - ((offset as usize + pos) % BLOCK)).min(data.len());
        let zero = data[pos..end] == ZEROS[..end - pos];
        match (zero, run_start) {
            (true, Some(s)) => {
                direct_bytes += write_run(file, direct, &data[s..pos], offset + s as u64)?;
                run_start = None;
            }
            (false, None) => run_start = Some(pos),
            _ => {}
        }
        pos = end;
    }
    if let Some(s) = run_start {
        direct_bytes += write_run(file, direct, &data[s..], offset + s as u64)?;
    }
    Ok(direct_bytes)
}

pub(crate) fn rel(target: &Path, snapshot_path: &Path) -> std::path::PathBuf {
    target.join(snapshot_path.strip_prefix("/").unwrap_or(snapshot_path))
}

/// What each fetch thread keeps for the whole restore.
struct ThreadState {
    /// Decompressed chunks (`Codec::open_in_place`).
    scratch: Vec<u8>,
    gather: Gather,
}

#[derive(Default)]
struct FileCache {
    open: HashMap<std::path::PathBuf, Target>,
}

impl FileCache {
    /// The open file at `path`; with `direct`, also opened with `O_DIRECT` where the file
    /// system allows it.
    fn get(&mut self, path: &Path, direct: bool) -> Result<&Target> {
        if !self.open.contains_key(path) {
            if self.open.len() >= FD_CACHE {
                self.open.clear();
            }
            let open = |flags| {
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | flags)
                    .open(path)
            };
            let file = open(0).map_err(|e| Error::io(path, e))?;
            let direct = direct.then(|| open(libc::O_DIRECT).ok()).flatten();
            self.open
                .insert(path.to_path_buf(), Target { file, direct });
        }
        self.open
            .get(path)
            .ok_or_else(|| Error::Invalid("file cache".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_writes_keep_every_byte() {
        // Zero and non-zero blocks, a lone byte at a block's end, at an unaligned offset.
        let mut data = vec![7u8; 5000];
        data.extend_from_slice(&[0; 10_383]); // the 1 lands at file offset 16383
        data.push(1);
        data.extend_from_slice(&[0; 3000]);
        data.extend_from_slice(&[9; 4096]);
        let offset = 1000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        file.set_len(offset + data.len() as u64).unwrap();
        write_sparse(&file, None, &data, offset).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert!(back[..offset as usize].iter().all(|&b| b == 0));
        assert_eq!(&back[offset as usize..], &data[..]);
    }

    /// Chunks at unaligned offsets, some following each other and some out of order, one larger
    /// than the gather buffer, partly through `O_DIRECT`: the file holds every byte, the blocks
    /// the chunks share included, and zero blocks stay holes.
    #[test]
    fn gathered_direct_writes_keep_every_byte() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut data: Vec<u8> = (0..9_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x as u8) | 1
            })
            .collect();
        data[1_000_000..1_400_000].fill(0);
        let cuts = [
            0, 1, 4095, 70_001, 1_000_003, 1_300_000, 2_500_000, 2_999_999, 3_000_000, 8_000_000,
            9_000_000,
        ];
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("f");
        File::create(&path)
            .unwrap()
            .set_len(data.len() as u64)
            .unwrap();
        assert!(
            FileCache::default()
                .get(&path, true)
                .unwrap()
                .direct
                .is_some(),
            "the build directory's file system refused O_DIRECT"
        );
        let (to_writer, runs) = bounded::<Run>(1);
        let (recycle, used) = unbounded::<Vec<u8>>();
        let writer = std::thread::spawn(move || {
            write_runs(runs, recycle, true, |e| panic!("write failed: {e}"))
        });
        // The first five pieces in order (gathered), the rest backwards (each written alone).
        let pieces: Vec<_> = cuts.windows(2).collect();
        let (ahead, behind) = pieces.split_at(5);
        let mut gather = Gather::new(to_writer, used);
        for w in ahead.iter().chain(behind.iter().rev()) {
            gather.add(&path, w[0] as u64, &data[w[0]..w[1]]);
        }
        gather.flush();
        drop(gather);
        let direct = writer.join().unwrap();
        assert!(direct > 8_000_000, "only {direct} bytes went direct");
        assert!(std::fs::read(&path).unwrap() == data);
        let allocated = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&path).unwrap());
        assert!(allocated * 512 < 8_700_000, "the zero blocks were written");
    }

    /// The aligned middle of a run that lies in memory aligned as in the file goes out direct;
    /// a misaligned one goes through the page cache.
    #[test]
    fn only_aligned_runs_go_direct() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("f");
        File::create(&path).unwrap().set_len(1 << 20).unwrap();
        let mut files = FileCache::default();
        let mut run = Run::new(Vec::new(), &path, 100);
        run.push(&[5; 300_000]);
        assert_eq!(
            run.write(&mut files, true).unwrap(),
            (300_100 / BLOCK - 1) * BLOCK
        );
        let t = files.get(&path, true).unwrap();
        let held = &run.buf[run.skip + run.lead..run.skip + run.end];
        let misaligned = write_run(&t.file, t.direct.as_ref(), held, 101).unwrap();
        assert_eq!(misaligned, 0);
        let back = std::fs::read(&path).unwrap();
        assert!(back[101..300_101].iter().all(|&b| b == 5));
    }
}
