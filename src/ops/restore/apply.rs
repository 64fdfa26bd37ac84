//! Creating restored entries on disk and applying their metadata, never following a symlink.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::fetch::rel;
use super::{Planned, RestoreSummary};
use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{}: NUL in path", p.display())))
}

/// Remove whatever non-directory is in the way of a new entry.
fn clear_path(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Err(Error::Invalid(format!(
            "{}: a directory is in the way",
            p.display()
        ))),
        Ok(_) => std::fs::remove_file(p).map_err(|e| Error::io(p, e)),
        Err(_) => Ok(()),
    }
}

/// Folders, in tree order, then (empty, pre-sized to `lengths`, their content lengths) regular
/// files on up to `threads` threads.
pub(crate) fn create_entries(
    target: &Path,
    entries: &[Planned],
    lengths: &[u64],
    threads: usize,
    summary: &mut RestoreSummary,
) -> Result<()> {
    let mut files = Vec::new();
    for (e, len) in entries.iter().zip(lengths) {
        let p = rel(target, &e.path);
        match e.node.kind {
            NodeKind::Dir => {
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(Error::Invalid(format!(
                            "{}: exists and is not a directory",
                            p.display()
                        )))
                    }
                    Err(_) => std::fs::create_dir(&p).map_err(|err| Error::io(&p, err))?,
                }
                summary.dirs_restored += 1;
            }
            // Created, written and finished by the fetch in one go.
            _ if written_once(e) => summary.files_restored += 1,
            NodeKind::File if e.link_to.is_none() => files.push((p, *len)),
            _ => {}
        }
    }
    par_each(&files, threads, |(p, len)| create_file(p, *len).map(drop))?;
    summary.files_restored += files.len() as u64;
    Ok(())
}

/// A file of exactly one chunk: the fetch creates it when that chunk arrives, writes it and
/// sets its metadata on the open file, all on one thread. That is 6 system calls instead of 9,
/// and only the create resolves a path, which is what restoring many small files costs.
pub(crate) fn written_once(e: &Planned) -> bool {
    e.node.kind == NodeKind::File && e.link_to.is_none() && e.node.content.len() == 1
}

/// An empty file of `len` bytes where `p` was (a folder in the way is an error).
pub(crate) fn create_file(p: &Path, len: u64) -> Result<std::fs::File> {
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)
    };
    // Usually nothing is in the way: clear it only when something is.
    let f = match create() {
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            clear_path(p)?;
            create()
        }
        other => other,
    }
    .map_err(|err| Error::io(p, err))?;
    // Pre-sizing leaves all-zero chunks as holes: sparse files stay sparse.
    if len > 0 {
        f.set_len(len).map_err(|err| Error::io(p, err))?;
    }
    Ok(f)
}

/// Run `f` on every item, on up to `threads` threads taking contiguous runs (neighbours in tree
/// order share a folder, so the threads rarely contend for one); the first error wins. Restoring
/// many small files is bound by per-file system calls, which run in parallel on separate cores.
fn par_each<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    // Below this, a thread costs more than it saves.
    const MIN_RUN: usize = 64;
    let run = items.len().div_ceil(threads.max(1)).max(MIN_RUN);
    if run >= items.len() {
        return items.iter().try_for_each(&f);
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(run)
            .map(|part| s.spawn(|| part.iter().try_for_each(&f)))
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(Error::Invalid("a restore thread panicked".into())))
        })
    })
}

/// Links and special files, then the metadata of everything but folders (`finish_dirs`).
pub(crate) fn finish_entries(
    target: &Path,
    entries: &[Planned],
    chown: bool,
    threads: usize,
    summary: &mut RestoreSummary,
) -> Result<()> {
    for e in entries {
        let p = rel(target, &e.path);
        match (e.node.kind, &e.link_to) {
            (NodeKind::File, Some(first)) => {
                clear_path(&p)?;
                let src = rel(target, first);
                std::fs::hard_link(&src, &p).map_err(|err| Error::io(&p, err))?;
                summary.files_restored += 1;
            }
            (NodeKind::Symlink, _) => {
                clear_path(&p)?;
                let t = std::ffi::OsStr::from_bytes(&e.node.link_target);
                std::os::unix::fs::symlink(t, &p).map_err(|err| Error::io(&p, err))?;
                summary.links_restored += 1;
            }
            (
                NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice | NodeKind::Socket,
                _,
            ) => {
                clear_path(&p)?;
                match make_special(&p, &e.node) {
                    Ok(()) => summary.special_restored += 1,
                    Err(err) => summary.warnings.push(format!("{}: {err}", p.display())),
                }
            }
            _ => {}
        }
    }
    let items: Vec<&Planned> = entries
        .iter()
        .filter(|e| e.node.kind != NodeKind::Dir && e.link_to.is_none() && !written_once(e))
        .collect();
    let warnings = Mutex::new(Vec::new());
    par_each(&items, threads, |e| {
        if let Err(err) = apply_metadata(&rel(target, &e.path), &e.node, chown) {
            warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(err.to_string());
        }
        Ok(())
    })?;
    summary
        .warnings
        .extend(warnings.into_inner().unwrap_or_else(|p| p.into_inner()));
    Ok(())
}

/// Folder metadata, deepest-first and after all content, so their mtimes stick.
pub(crate) fn finish_dirs(
    target: &Path,
    dirs: &[(PathBuf, Node)],
    chown: bool,
    summary: &mut RestoreSummary,
) {
    for (path, node) in dirs.iter().rev() {
        if let Err(err) = apply_metadata(&rel(target, path), node, chown) {
            summary.warnings.push(err.to_string());
        }
    }
}

fn make_special(p: &Path, node: &Node) -> Result<()> {
    let c = cpath(p)?;
    let kind = match node.kind {
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::CharDevice => libc::S_IFCHR,
        NodeKind::BlockDevice => libc::S_IFBLK,
        _ => libc::S_IFSOCK,
    };
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            kind | (node.mode & 0o7777),
            node.rdev as libc::dev_t,
        )
    };
    if rc != 0 {
        return Err(Error::io(p, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn apply_metadata(p: &Path, node: &Node, chown: bool) -> Result<()> {
    let c = cpath(p)?;
    for x in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name);
        xattr_result(p, name, xattr::set(p, name, &x.value));
    }
    if chown {
        // SAFETY: valid path; lchown never follows a symlink.
        if unsafe { libc::lchown(c.as_ptr(), node.uid, node.gid) } != 0 {
            return Err(Error::io(p, std::io::Error::last_os_error()));
        }
    }
    if node.kind != NodeKind::Symlink {
        // SAFETY: valid path; the entry was just created by us and is not a symlink.
        if unsafe { libc::fchmodat(libc::AT_FDCWD, c.as_ptr(), node.mode & 0o7777, 0) } != 0 {
            return Err(Error::io(p, std::io::Error::last_os_error()));
        }
    }
    let times = times(node);
    // SAFETY: valid path and a two-element timespec array.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(Error::io(p, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `apply_metadata` for a regular file that is open (`p` only names it in errors): the same
/// steps in the same order (ownership before mode, since chown clears set-id bits), on the
/// descriptor instead of the path.
pub(crate) fn apply_metadata_to(file: &File, p: &Path, node: &Node, chown: bool) -> Result<()> {
    use xattr::FileExt;
    let fd = file.as_raw_fd();
    for x in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name);
        xattr_result(p, name, file.set_xattr(name, &x.value));
    }
    // SAFETY (all three): `fd` is an open descriptor owned by `file`.
    if chown && unsafe { libc::fchown(fd, node.uid, node.gid) } != 0 {
        return Err(Error::io(p, std::io::Error::last_os_error()));
    }
    if unsafe { libc::fchmod(fd, node.mode & 0o7777) } != 0 {
        return Err(Error::io(p, std::io::Error::last_os_error()));
    }
    let times = times(node);
    if unsafe { libc::futimens(fd, times.as_ptr()) } != 0 {
        return Err(Error::io(p, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// An extended attribute that cannot be set is not worth failing the file for.
fn xattr_result(p: &Path, name: &std::ffi::OsStr, r: std::io::Result<()>) {
    if let Err(err) = r {
        if err.kind() != ErrorKind::Unsupported {
            tracing::debug!("{}: xattr {:?}: {err}", p.display(), name);
        }
    }
}

/// Access and modification times as utimensat and futimens take them.
fn times(node: &Node) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: node.atime.secs as libc::time_t,
            tv_nsec: node.atime.nanos as libc::c_long,
        },
        libc::timespec {
            tv_sec: node.mtime.secs as libc::time_t,
            tv_nsec: node.mtime.nanos as libc::c_long,
        },
    ]
}
