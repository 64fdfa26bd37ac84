//! `mount MOUNTPOINT`: serve the repository's snapshots read-only through FUSE until unmounted
//! (`umount`, `fusermount3 -u`) or interrupted (Ctrl-C, SIGTERM unmount and exit 0).

mod fs;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use fuser::{Config, MountOption, SessionACL};

use backup_to_s3::vfs::{Vfs, VfsOptions};

use super::args::Global;
use super::{exit, open_repo};

#[derive(Args, Debug)]
pub struct MountArgs {
    /// An existing, empty folder to mount the snapshots on
    pub mountpoint: PathBuf,
    /// Let other users see the mount (non-root users need user_allow_other in /etc/fuse.conf)
    #[arg(long)]
    pub allow_other: bool,
    /// Memory for decrypted file data, MiB
    #[arg(long, default_value_t = 64)]
    pub cache_mib: u64,
}

/// Set by SIGINT, SIGTERM and SIGHUP; the main thread polls it.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is zeroed and then filled as sigaction(2) documents.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("installing a signal handler");
        }
    }
    Ok(())
}

/// Fail early, with a clear message, on what would make the mount fail.
fn check_mountpoint(path: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("mountpoint {}: no such folder", path.display()))?;
    if !meta.is_dir() {
        bail!("mountpoint {} is not a folder", path.display());
    }
    if !Path::new("/dev/fuse").exists() {
        bail!(
            "/dev/fuse is missing: load the fuse kernel module (modprobe fuse), or give the \
             container the device (--device /dev/fuse)"
        );
    }
    path.canonicalize()
        .with_context(|| format!("mountpoint {}", path.display()))
}

fn mount_error(e: std::io::Error, at: &Path) -> anyhow::Error {
    let at = at.display();
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => anyhow::anyhow!(
            "not permitted to mount at {at} ({e}): run as root, or install fusermount3 \
             (package fuse3) for mounts by other users"
        ),
        Some(libc::ENOENT) if e.to_string().contains("fusermount") => anyhow::anyhow!(
            "cannot mount at {at}: not root and no fusermount3 (install the fuse3 package)"
        ),
        _ => anyhow::anyhow!("cannot mount at {at}: {e}"),
    }
}

pub fn mount(g: &Global, a: MountArgs) -> Result<i32> {
    let at = check_mountpoint(&a.mountpoint)?;
    let repo = Arc::new(open_repo(g)?);
    let opts = VfsOptions {
        cache_bytes: a.cache_mib.saturating_mul(1 << 20),
        ..Default::default()
    };
    let vfs = Vfs::new(repo, opts).context("reading the snapshot list")?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("backup-to-s3".into()),
        MountOption::Subtype("backup-to-s3".into()),
        MountOption::RO,
        MountOption::DefaultPermissions,
    ];
    if a.allow_other {
        config.acl = SessionACL::All;
    }
    // Several kernel requests in flight: reads of different files (or a slow S3 fetch) do not
    // wait for each other.
    config.n_threads = Some(4);
    install_signal_handlers()?;
    let session = fuser::Session::new(fs::SnapshotFs { vfs }, &at, &config)
        .map_err(|e| mount_error(e, &at))?;
    let session = session.spawn().context("starting the filesystem threads")?;
    if !g.quiet {
        eprintln!(
            "mounted at {}; Ctrl-C or `umount {}` to stop",
            at.display(),
            at.display()
        );
    }
    while !STOP.load(Ordering::SeqCst) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if session.guard.is_finished() {
        // Unmounted from outside: the session ended.
        return match session.join() {
            Ok(()) => Ok(exit::OK),
            Err(e) => Err(e).context("serving the filesystem"),
        };
    }
    if let Err(e) = session.umount_and_join() {
        // Busy (a process has a file open or its working folder inside): detach lazily; the
        // kernel ends the connection when this process exits.
        tracing::info!("unmount failed ({e}); detaching lazily");
        lazy_unmount(&at)?;
    }
    wait_gone(&at, Duration::from_secs(5));
    Ok(exit::OK)
}

fn lazy_unmount(at: &Path) -> Result<()> {
    let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())?;
    // SAFETY: a valid NUL-terminated path; umount2 does not retain it.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    for helper in ["fusermount3", "fusermount"] {
        let status = std::process::Command::new(helper)
            .args(["-u", "-z"])
            .arg(at)
            .status();
        if status.is_ok_and(|s| s.success()) {
            return Ok(());
        }
    }
    Err(err).with_context(|| format!("unmounting {}", at.display()))
}

/// Wait (bounded) until `at` is no longer a FUSE mount of ours, so callers see it gone on exit.
fn wait_gone(at: &Path, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit && is_mounted(at) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_mounted(at: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let at = at.to_string_lossy();
    table.lines().any(|l| {
        let mut f = l.split(' ');
        f.nth(4) == Some(&*at) && l.contains(" - fuse.backup-to-s3 ")
    })
}
