//! Creating restored entries on disk and applying their metadata, never following a symlink.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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

/// Folders and (empty, pre-sized to `lengths`, their content lengths) regular files, in tree order.
pub(crate) fn create_entries(
    target: &Path,
    entries: &[Planned],
    lengths: &[u64],
    summary: &mut RestoreSummary,
) -> Result<()> {
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
            NodeKind::File if e.link_to.is_none() => {
                clear_path(&p)?;
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&p)
                    .map_err(|err| Error::io(&p, err))?;
                // Pre-sizing leaves all-zero chunks as holes: sparse files stay sparse.
                f.set_len(*len).map_err(|err| Error::io(&p, err))?;
                summary.files_restored += 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Links and special files, then metadata: files first, folders deepest-first (so their mtimes stick).
pub(crate) fn finish_entries(
    target: &Path,
    entries: &[Planned],
    owners: bool,
    summary: &mut RestoreSummary,
) -> Result<()> {
    for e in entries {
        let p = rel(target, &e.path);
        match (e.node.kind, e.link_to) {
            (NodeKind::File, Some(first)) => {
                clear_path(&p)?;
                let src = rel(target, &entries[first].path);
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
    let root = unsafe { libc::geteuid() } == 0;
    for e in entries
        .iter()
        .filter(|e| e.node.kind != NodeKind::Dir && e.link_to.is_none())
    {
        if let Err(err) = apply_metadata(&rel(target, &e.path), &e.node, owners && root) {
            summary.warnings.push(err.to_string());
        }
    }
    for e in entries
        .iter()
        .rev()
        .filter(|e| e.node.kind == NodeKind::Dir)
    {
        if let Err(err) = apply_metadata(&rel(target, &e.path), &e.node, owners && root) {
            summary.warnings.push(err.to_string());
        }
    }
    Ok(())
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

fn apply_metadata(p: &Path, node: &Node, owners: bool) -> Result<()> {
    let c = cpath(p)?;
    for x in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name);
        if let Err(err) = xattr::set(p, name, &x.value) {
            if err.kind() != ErrorKind::Unsupported {
                tracing::debug!("{}: xattr {:?}: {err}", p.display(), name);
            }
        }
    }
    if owners {
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
    let times = [
        libc::timespec {
            tv_sec: node.atime.secs as libc::time_t,
            tv_nsec: node.atime.nanos as libc::c_long,
        },
        libc::timespec {
            tv_sec: node.mtime.secs as libc::time_t,
            tv_nsec: node.mtime.nanos as libc::c_long,
        },
    ];
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
