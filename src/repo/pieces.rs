//! Reading a pack front to back in ranged pieces, so that a reader holds megabytes rather than
//! a whole pack (16 MiB and more). Used where ranged reads are cheap (`Backend::cheap_ranges`:
//! a local disk): by `check --read-data`, which verifies every blob, and by prune's repack,
//! which verifies and copies the live ones. Where every request is billed (S3) callers read a
//! pack with one request instead.

use crate::backend::Kind;
use crate::error::Result;
use crate::format::pack::PackEntry;
use crate::id::{Id, ObjectHasher};
use crate::repo::Repository;

/// Bytes per read when a pack is read in pieces.
pub(crate) const PIECE: u64 = 4 << 20;

/// Which of a pack's entries may be handed out, in offset order: those within the pack and
/// after every byte already lent (the borrower may have opened a blob where it lies).
struct Lending {
    size: u64,
    lent_to: u64,
}

impl Lending {
    fn new(size: u64) -> Lending {
        Lending { size, lent_to: 0 }
    }

    /// The byte range of `e` in the pack, if it may be lent.
    fn range(&mut self, e: &PackEntry) -> Option<(u64, u64)> {
        let start = u64::from(e.offset);
        let end = start + u64::from(e.length);
        if end > self.size || start < self.lent_to {
            return None;
        }
        self.lent_to = end;
        Some((start, end))
    }
}

fn in_offset_order(entries: &[PackEntry]) -> Vec<&PackEntry> {
    let mut sorted: Vec<&PackEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.offset);
    sorted
}

/// `read_in_pieces` for a pack already read whole: each of `entries` gets its bytes in `pack`
/// on the same terms (None when they lie outside it or overlap an earlier entry).
pub(crate) fn lend_whole<F>(pack: &mut [u8], entries: &[PackEntry], mut each: F) -> Result<()>
where
    F: FnMut(&PackEntry, Option<&mut [u8]>) -> Result<()>,
{
    let mut lending = Lending::new(pack.len() as u64);
    for e in in_offset_order(entries) {
        let bytes = lending
            .range(e)
            .and_then(|(start, end)| pack.get_mut(start as usize..end as usize));
        each(e, bytes)?;
    }
    Ok(())
}

/// Read the pack `name` of `size` bytes front to back in pieces, hand each of `entries` its
/// bytes (None when they lie outside the pack or overlap an earlier entry), hashed already and
/// the caller's to change (a blob may be opened where it lies), and return the
/// pack's name hash. Holds one read at a time: a piece, or one blob if it is larger. The
/// pieces after the last entry are only hashed. An error from `each` stops the read.
pub(crate) fn read_in_pieces<F>(
    repo: &Repository,
    name: &str,
    size: u64,
    entries: &[PackEntry],
    mut each: F,
) -> Result<Id>
where
    F: FnMut(&PackEntry, Option<&mut [u8]>) -> Result<()>,
{
    let mut hasher = ObjectHasher::new();
    // `buf` holds the pack's bytes from offset `base`; every byte before `hashed_to` has been
    // hashed, once and in order.
    let (mut buf, mut base, mut hashed_to) = (Vec::new(), 0u64, 0u64);
    let mut lending = Lending::new(size);
    for e in in_offset_order(entries) {
        let Some((start, end)) = lending.range(e) else {
            each(e, None)?;
            continue;
        };
        if end > base + buf.len() as u64 {
            // A new read from this entry on (from the first byte not hashed yet, should there be
            // a gap). The entry's start, when the last read already held it, is read again
            // rather than kept and joined to the next piece: one buffer, never two.
            let from = start.min(hashed_to);
            let to = size.min(end.max(from + PIECE));
            drop(std::mem::take(&mut buf));
            buf = repo
                .backend()
                .get_range(Kind::Pack, name, from, to - from)?;
            hasher.update(buf.get((hashed_to - from) as usize..).unwrap_or_default());
            (base, hashed_to) = (from, to);
        }
        each(
            e,
            buf.get_mut((start - base) as usize..(end - base) as usize),
        )?;
    }
    // The header and trailer after the last blob are only hashed.
    drop(buf);
    while hashed_to < size {
        let n = PIECE.min(size - hashed_to);
        hasher.update(&repo.backend().get_range(Kind::Pack, name, hashed_to, n)?);
        hashed_to += n;
    }
    Ok(hasher.finish())
}
