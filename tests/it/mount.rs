//! Real FUSE mounts through the binary (needs /dev/fuse and root, as in CI): snapshot folders
//! match their originals, top folders, random reads, EROFS, and ending by umount and SIGTERM.
//! A guard unmounts lazily and kills the process whatever happens, so no mount is left behind.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cli_basics::make_tree;
use crate::common::*;

fn is_mounted(at: &Path) -> bool {
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let at = at.to_str().unwrap();
    table.lines().any(|l| l.split(' ').nth(4) == Some(at))
}

/// A running `mount` command; dropping it unmounts (lazily) and reaps the process.
struct Mounted {
    child: Child,
    at: PathBuf,
    log: PathBuf,
}

impl Mounted {
    fn start(env: &Env, name: &str) -> Mounted {
        let at = env.path(name);
        fs::create_dir_all(&at).unwrap();
        let at = at.canonicalize().unwrap();
        let log = env.path(&format!("{name}.log"));
        let child = env
            .cmd()
            .arg("mount")
            .arg(&at)
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut m = Mounted { child, at, log };
        let start = Instant::now();
        while !m.at.join("snapshots").is_dir() {
            if let Some(status) = m.child.try_wait().unwrap() {
                panic!("mount exited with {status}: {}", m.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no mount: {}",
                m.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for the process to end by itself.
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "still running: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The one folder below snapshots/ of a snapshot id, waiting for a refresh to show it.
    fn snapshot(&self, id: &str) -> PathBuf {
        let suffix = format!("_{}", &id[..8]);
        let start = Instant::now();
        loop {
            for e in fs::read_dir(self.at.join("snapshots")).unwrap() {
                let name = e.unwrap().file_name();
                if name.as_bytes().ends_with(suffix.as_bytes()) {
                    return self.at.join("snapshots").join(name);
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no snapshot {id}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.at) {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn below(folder: &Path, original: &Path) -> PathBuf {
    folder.join(original.strip_prefix("/").unwrap())
}

fn erofs(r: std::io::Result<impl Sized>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}"),
        Ok(_) => panic!("{what} succeeded on a read-only mount"),
    }
}

#[test]
fn mounted_snapshots_match_their_originals() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src);
    let large = pseudo_random(21, 6 << 20);
    fs::write(src.join("large"), &large).unwrap();
    // A folder larger than one readdir reply.
    fs::create_dir(src.join("many")).unwrap();
    for i in 0..1500 {
        fs::write(
            src.join(format!("many/a-rather-long-file-name-{i:05}")),
            b"",
        )
        .unwrap();
    }
    let s = src.to_str().unwrap();
    let first = env.backup(&["--host", "one", "--tag", "t1", s]);
    let first = first["snapshot_id"].as_str().unwrap().to_string();
    let m = Mounted::start(&env, "mnt");
    let folder1 = m.snapshot(&first);
    assert_same_tree(&src, &below(&folder1, &src));

    // Random offsets of a multi-chunk file, through the kernel.
    let f = File::open(below(&folder1, &src).join("large")).unwrap();
    for w in pseudo_random(5, 8 * 24).chunks_exact(8) {
        let x = u64::from_le_bytes(w.try_into().unwrap());
        let offset = (x % (large.len() as u64 + 100)) as usize;
        let mut buf = vec![0u8; ((x >> 40) % (600 << 10)) as usize];
        let n = f.read_at(&mut buf, offset as u64).unwrap();
        let want = large.get(offset..(offset + buf.len()).min(large.len()));
        assert!(&buf[..n] == want.unwrap_or(&[]), "read at {offset}");
    }

    // Read-only: every kind of change fails with EROFS.
    let inside = below(&folder1, &src);
    erofs(File::create(inside.join("new")), "create");
    erofs(
        File::options().write(true).open(inside.join("large")),
        "open for writing",
    );
    erofs(fs::create_dir(inside.join("newdir")), "mkdir");
    erofs(fs::remove_file(inside.join("empty")), "unlink");
    erofs(
        fs::rename(inside.join("empty"), inside.join("e2")),
        "rename",
    );
    erofs(
        std::os::unix::fs::symlink("x", inside.join("l2")),
        "symlink",
    );
    erofs(
        fs::hard_link(inside.join("empty"), inside.join("h2")),
        "link",
    );
    let perms = fs::Permissions::from_mode(0o600);
    erofs(fs::set_permissions(inside.join("empty"), perms), "chmod");
    erofs(xattr::set(inside.join("empty"), "user.x", b"y"), "setxattr");
    erofs(
        File::create(m.at.join("snapshots/new")),
        "create at the top",
    );

    // A second snapshot, taken while mounted, appears; the first keeps its content.
    fs::write(src.join("dir/sub/small.txt"), b"changed\n").unwrap();
    fs::write(src.join("added"), b"new file").unwrap();
    fs::remove_file(src.join("empty")).unwrap();
    let second = env.backup(&["--host", "two", "--tag", "t2", s]);
    let second = second["snapshot_id"].as_str().unwrap().to_string();
    let folder2 = m.snapshot(&second);
    assert_same_tree(&src, &below(&folder2, &src));
    let old = fs::read(below(&folder1, &src).join("dir/sub/small.txt")).unwrap();
    assert_eq!(old, b"hello world\n");

    // latest, hosts/, tags/ (symlinks into snapshots/).
    let name = |p: &Path| p.file_name().unwrap().to_os_string();
    let latest = fs::read_link(m.at.join("latest")).unwrap();
    assert_eq!(latest, Path::new("snapshots").join(name(&folder2)));
    assert_eq!(
        fs::read(below(&m.at.join("latest"), &src).join("added")).unwrap(),
        b"new file"
    );
    for (group, folder) in [("hosts/one", &folder1), ("hosts/two", &folder2)] {
        let link = m.at.join(group).join(name(folder));
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("../../snapshots").join(name(folder))
        );
        assert_eq!(fs::canonicalize(&link).unwrap(), *folder);
    }
    let listing = |p: &str| -> Vec<_> {
        let mut v: Vec<_> = fs::read_dir(m.at.join(p))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing("tags"), [OsStr::new("t1"), OsStr::new("t2")]);
    assert_eq!(listing("tags/t2"), [name(&folder2)]);

    // `umount` ends the process with exit code 0 (nothing may be open: it would be busy).
    drop(f);
    let mut m = m;
    let status = Command::new("umount").arg(&m.at).status().unwrap();
    assert!(status.success());
    let exit = m.wait_exit();
    assert_eq!(exit.code(), Some(0), "{}", m.log());
    assert!(!is_mounted(&m.at));
}

#[test]
fn sigterm_unmounts_and_exits_zero() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let mut m = Mounted::start(&env, "mnt");
    assert_eq!(
        fs::read(below(&m.at.join("latest"), &src).join("f")).unwrap(),
        b"x"
    );
    // Busy: a process inside the mount does not keep the command from ending.
    let busy = File::open(below(&m.at.join("latest"), &src).join("f")).unwrap();
    assert_eq!(unsafe { libc::kill(m.child.id() as i32, libc::SIGTERM) }, 0);
    let exit = m.wait_exit();
    assert_eq!(exit.code(), Some(0), "{}", m.log());
    assert!(!is_mounted(&m.at), "{}", m.log());
    drop(busy);
}

#[test]
fn mount_errors_are_clear() {
    let env = Env::new();
    env.init();
    let out = env.run(&["mount", env.path("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such folder"), "{err}");
    fs::write(env.path("file"), b"").unwrap();
    let out = env.run(&["mount", env.path("file").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"));
}
