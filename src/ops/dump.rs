//! `dump`: one file of a snapshot, written to a stream (a database dump straight into `psql`,
//! without a copy on disk). Chunks are read a window ahead in parallel and written in order;
//! each is verified (`Repository::read_blob`) before any of its bytes are written.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::tree::NodeKind;
use crate::id::{BlobKind, Id};
use crate::ops::snapshots::tree_at;
use crate::repo::Repository;

/// Chunks read ahead per reader thread: a window holds at most `threads × AHEAD` chunks
/// (4 MiB each at most).
const AHEAD: usize = 2;

/// Write the content of the file at `path` (absolute, inside the snapshot whose root tree is
/// `root`) to `out`; returns the bytes written. `threads` chunks are fetched at once.
pub fn dump_file(
    repo: &Repository,
    root: &Id,
    path: &Path,
    threads: usize,
    out: &mut dyn Write,
) -> Result<u64> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Invalid(format!(
            "{}: name a file inside the snapshot",
            path.display()
        )));
    };
    let (_, tree) = tree_at(repo, root, parent)?;
    let node = tree.find(name.as_encoded_bytes()).ok_or_else(|| {
        Error::Invalid(format!("{}: no such path in the snapshot", path.display()))
    })?;
    if node.kind != NodeKind::File {
        return Err(Error::Invalid(format!(
            "{}: not a file ({:?}); `restore --include` restores folders",
            path.display(),
            node.kind
        )));
    }
    let threads = threads.max(1);
    let mut written = 0u64;
    for ids in node.content.chunks(threads * AHEAD) {
        for plain in read_window(repo, ids, threads)? {
            out.write_all(&plain)
                .map_err(|e| Error::io("(output)", e))?;
            written += plain.len() as u64;
        }
    }
    out.flush().map_err(|e| Error::io("(output)", e))?;
    Ok(written)
}

/// Read and verify `ids` with up to `threads` (at least 1) threads; returns them in order.
fn read_window(repo: &Repository, ids: &[Id], threads: usize) -> Result<Vec<Vec<u8>>> {
    let per_thread = ids.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = ids
            .chunks(per_thread)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|id| repo.read_blob(BlobKind::Data, id))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(ids.len());
        for part in parts {
            let part = part
                .join()
                .map_err(|_| Error::Invalid("a chunk reader thread panicked".into()))??;
            all.extend(part);
        }
        Ok(all)
    })
}
