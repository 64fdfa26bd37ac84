//! The live-blob set of a prune's mark phase (gc.md §5 "Memory"): a bitmap over the positions
//! of the indexed blob ids. The ids themselves are written, sorted, to a temporary file
//! (unlinked at once); RAM holds one bit per blob plus every 128th id as a fence, so a lookup
//! is a binary search over the fences and one 4 KiB read. Ids outside that universe (blobs no
//! index lists: rare) go to a small hash set.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::id::Id;

/// Calls its argument with every id of the universe, in ascending order.
pub type IdSource<'a> = dyn FnMut(&mut dyn FnMut(Id) -> Result<()>) -> Result<()> + 'a;

/// Ids per block between fences: one block is one 4 KiB read.
const BLOCK: u64 = 128;

pub struct LiveSet {
    file: File,
    n: u64,
    fences: Vec<Id>,
    bits: Vec<u64>,
    set: u64,
    extra: HashSet<Id>,
}

impl LiveSet {
    /// An empty set over the universe `ids`, which must come in ascending order (duplicates
    /// are skipped); its sorted copy lives in a temporary file under `dir`.
    pub fn new(dir: &Path, ids: &mut IdSource<'_>) -> Result<LiveSet> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (file, path) = crate::index::scratch_file(dir, "prune-ids")?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut fences = Vec::new();
        let mut n = 0u64;
        let mut last: Option<Id> = None;
        ids(&mut |id| {
            if last.is_some_and(|l| l >= id) {
                return Ok(()); // not ascending: skip (the universe only needs to be a set)
            }
            if n.is_multiple_of(BLOCK) {
                fences.push(id);
            }
            out.write_all(&id.0).map_err(|e| Error::io(&path, e))?;
            last = Some(id);
            n += 1;
            Ok(())
        })?;
        out.flush().map_err(|e| Error::io(&path, e))?;
        drop(out);
        Ok(LiveSet {
            file,
            n,
            fences,
            bits: vec![0; n.div_ceil(64) as usize],
            set: 0,
            extra: HashSet::new(),
        })
    }

    /// The position of `id` in the universe.
    fn position(&self, id: &Id) -> Result<Option<u64>> {
        let block = self.fences.partition_point(|f| f <= id);
        let Some(block) = block.checked_sub(1) else {
            return Ok(None);
        };
        let start = block as u64 * BLOCK;
        let count = BLOCK.min(self.n - start) as usize;
        let mut buf = vec![0u8; count * 32];
        self.file
            .read_exact_at(&mut buf, start * 32)
            .map_err(|e| Error::io("prune id file", e))?;
        let (mut lo, mut hi) = (0usize, count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let probe = buf.get(mid * 32..mid * 32 + 32).unwrap_or_default();
            match probe.cmp(id.0.as_slice()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(start + mid as u64)),
            }
        }
        Ok(None)
    }

    /// Add an id; true when it was not in the set yet.
    pub fn insert(&mut self, id: &Id) -> Result<bool> {
        Ok(self.insert_new(id)?.is_some())
    }

    /// Add an id: None when it was in the set already, else whether it is in the universe.
    pub fn insert_new(&mut self, id: &Id) -> Result<Option<bool>> {
        if let Some(p) = self.position(id)? {
            let (word, mask) = ((p / 64) as usize, 1u64 << (p % 64));
            if let Some(w) = self.bits.get_mut(word) {
                let new = *w & mask == 0;
                *w |= mask;
                self.set += u64::from(new);
                return Ok(new.then_some(true));
            }
        }
        Ok(self.extra.insert(*id).then_some(false))
    }

    pub fn contains(&self, id: &Id) -> Result<bool> {
        Ok(match self.position(id)? {
            Some(p) => self
                .bits
                .get((p / 64) as usize)
                .is_some_and(|w| w & (1u64 << (p % 64)) != 0),
            None => self.extra.contains(id),
        })
    }

    /// Number of ids in the set.
    pub fn len(&self) -> u64 {
        self.set + self.extra.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of RAM the set holds (bitmap, fences, extra ids), for reports and the benchmark.
    pub fn memory_bytes(&self) -> u64 {
        (self.bits.len() * 8 + self.fences.len() * 32 + self.extra.capacity() * 40) as u64
    }
}
