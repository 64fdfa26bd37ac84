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
    let mut sorted: Vec<&PackEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.offset);
    let mut hasher = ObjectHasher::new();
    // `buf` holds the pack's bytes from offset `base`; every byte before `hashed_to` has been
    // hashed, once and in order.
    let (mut buf, mut base, mut hashed_to) = (Vec::new(), 0u64, 0u64);
    // Where the last entry handed out ended: its bytes may have been changed.
    let mut lent_to = 0u64;
    for e in sorted {
        let start = u64::from(e.offset);
        let end = start + u64::from(e.length);
        if end > size || start < lent_to {
            each(e, None)?;
            continue;
        }
        lent_to = end;
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
