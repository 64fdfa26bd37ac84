//! Shared helpers: a repository in a temp folder with a fast KDF, running the real binary.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use backup_to_s3::backend::local::LocalBackend;
use backup_to_s3::format::keyfile::KdfParams;
use backup_to_s3::format::tree::NodeKind;
use backup_to_s3::id::BlobKind;
use backup_to_s3::index::BlobLocation;
use backup_to_s3::repo::{InitOptions, OpenOptions, Repository};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_backup-to-s3")
}

/// Cheap KDF parameters: tests open repositories hundreds of times.
pub fn fast_init() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            m_cost: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        },
        ..Default::default()
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn repo_path(&self) -> PathBuf {
        self.path("repo")
    }
    /// A command with repository, password and cache set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("BACKUP_TO_S3_REPOSITORY", self.repo_path())
            .env("BACKUP_TO_S3_PASSWORD", PASSWORD)
            .env("BACKUP_TO_S3_CACHE_DIR", self.path("cache"))
            .env_remove("BACKUP_TO_S3_PASSWORD_FILE")
            .env_remove("BACKUP_TO_S3_PASSWORD_COMMAND");
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    /// Run and require exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    pub fn init(&self) {
        self.init_with(&[]);
    }
    /// `init` with the cheap test KDF plus extra options (e.g. `--pack-size-mib 1`).
    pub fn init_with(&self, extra: &[&str]) {
        let mut args = vec!["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"];
        args.extend_from_slice(extra);
        self.ok(&args);
    }
    /// `backup --json` and its summary line.
    pub fn backup(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["backup", "--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        last_json(&out)
    }
    pub fn open(&self) -> Repository {
        Repository::open(
            std::sync::Arc::new(LocalBackend::new(self.repo_path())),
            PASSWORD.as_bytes(),
            &OpenOptions {
                cache_dir: Some(self.path("cache")),
            },
        )
        .unwrap()
    }
}

pub fn last_json(out: &str) -> serde_json::Value {
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compare two trees: names, kinds, contents, modes, mtimes (ns), symlink targets, xattrs.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let mut names_a: Vec<_> = fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut names_b: Vec<_> = fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names_a.sort();
    names_b.sort();
    assert_eq!(
        names_a,
        names_b,
        "entries of {} vs {}",
        a.display(),
        b.display()
    );
    for n in names_a {
        let (pa, pb) = (a.join(&n), b.join(&n));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "type of {}", pb.display());
        assert_eq!(ma.mode(), mb.mode(), "mode of {}", pb.display());
        if !ma.file_type().is_symlink() {
            assert_eq!(
                (ma.mtime(), ma.mtime_nsec()),
                (mb.mtime(), mb.mtime_nsec()),
                "mtime of {}",
                pb.display()
            );
        }
        assert_eq!(ma.uid(), mb.uid(), "uid of {}", pb.display());
        if ma.is_dir() {
            assert_same_tree(&pa, &pb);
        } else if ma.is_file() {
            assert_eq!(ma.len(), mb.len(), "size of {}", pb.display());
            assert!(
                fs::read(&pa).unwrap() == fs::read(&pb).unwrap(),
                "content of {}",
                pb.display()
            );
        } else if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
        }
        if !ma.file_type().is_symlink() {
            let xa: Vec<_> = xattr::list(&pa).map(|l| l.collect()).unwrap_or_default();
            let xb: Vec<_> = xattr::list(&pb).map(|l| l.collect()).unwrap_or_default();
            assert_eq!(xa, xb, "xattrs of {}", pb.display());
        }
    }
}

/// Set the mtime of a file or folder.
pub fn set_mtime(p: &Path, secs: u64, nanos: u32) {
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    fs::File::options()
        .write(p.is_file())
        .read(!p.is_file())
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Where `restore --target T` puts a backed-up absolute path.
pub fn restored(target: &Path, original: &Path) -> PathBuf {
    target.join(original.strip_prefix("/").unwrap())
}

/// Where each file of the first snapshot stores its data chunks, by file name.
pub fn chunk_locations(env: &Env) -> BTreeMap<String, Vec<BlobLocation>> {
    let repo = env.open();
    let (_, snap) = repo.list_snapshots().unwrap().remove(0);
    let mut out = BTreeMap::new();
    let mut stack = vec![snap.tree];
    while let Some(tree) = stack.pop() {
        for node in repo.load_tree(&tree).unwrap().nodes {
            stack.extend(node.subtree);
            if node.kind == NodeKind::File {
                let locs = node
                    .content
                    .iter()
                    .map(|id| repo.lookup_kind(BlobKind::Data, id).unwrap().unwrap());
                out.insert(node.name_lossy().to_string(), locs.collect());
            }
        }
    }
    out
}
