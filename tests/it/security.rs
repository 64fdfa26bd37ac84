//! Security review as a test: after backing up files with distinctive names and contents, no
//! repository object (nor the local cache) holds a name, a piece of content, a plaintext BLAKE3
//! hash of a file or chunk, or the password; key files record argon2id with its parameters; key
//! types never print their bytes; the password never shows in `--json` output or on stderr.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use backup_to_s3::crypto::{MasterKey, SealKey};

use crate::common::*;

/// Every file below `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// Needles (each at least 8 bytes) found anywhere in `hay`, by an 8-byte prefix filter.
fn found_in(hay: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut by_prefix: HashMap<[u8; 8], Vec<usize>> = HashMap::new();
    for (i, (_, n)) in needles.iter().enumerate() {
        assert!(n.len() >= 8);
        let p: [u8; 8] = n[..8].try_into().unwrap();
        by_prefix.entry(p).or_default().push(i);
    }
    let mut hits = Vec::new();
    for pos in 0..hay.len().saturating_sub(7) {
        let p: [u8; 8] = hay[pos..pos + 8].try_into().unwrap();
        if let Some(list) = by_prefix.get(&p) {
            for &i in list {
                if hay[pos..].starts_with(&needles[i].1) {
                    hits.push(needles[i].0.clone());
                }
            }
        }
    }
    hits
}

#[test]
fn repository_reveals_no_names_contents_hashes_or_password() {
    let env = Env::new();
    env.init();
    let src = env.path("src-Qx7-secret-folder");
    fs::create_dir_all(src.join("project-Hz88-classified")).unwrap();
    let self_named = "self-named-Mv51-document.txt";
    let files_in: Vec<(&str, Vec<u8>)> = vec![
        (
            "zz-confidential-salaries-2024.csv",
            b"Alice Q. Example;salary=123456;bank=DE89370400440532013000\n".repeat(2000),
        ),
        (
            "compressible-Kq93-logfile.log",
            b"MARKER-compressible-line-repeated-forever ".repeat(50_000),
        ),
        (
            self_named,
            format!("This file is called {self_named} and says so.\n")
                .repeat(50)
                .into_bytes(),
        ),
        (
            "project-Hz88-classified/random-Pw42-blob.bin",
            pseudo_random(4242, 3 << 19),
        ),
    ];
    for (name, data) in &files_in {
        fs::write(src.join(name), data).unwrap();
    }
    let mut outputs = vec![env.ok(&["backup", "--json", "-v", src.to_str().unwrap()])];
    let target = env.path("restore");
    for args in [
        vec!["snapshots", "--json"],
        vec!["ls", "--json", "latest"],
        vec!["check", "--read-data", "--json", "-v"],
        vec![
            "restore",
            "--json",
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
        vec!["key", "list", "--json"],
    ] {
        let out = env.run(&args);
        assert!(out.status.success(), "{args:?}");
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let wrong = env
        .cmd()
        .env("BACKUP_TO_S3_PASSWORD", "wrong-password-Zr81")
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(12));
    let wrong_out = String::from_utf8_lossy(&wrong.stderr).into_owned();
    assert!(!wrong_out.contains("wrong-password-Zr81"), "{wrong_out}");
    for o in &outputs {
        assert!(!o.contains(PASSWORD), "the password was printed: {o}");
    }

    let repo = env.open();
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("password".into(), PASSWORD.as_bytes().to_vec()),
        (
            "source path".into(),
            src.to_str().unwrap().as_bytes().to_vec(),
        ),
        ("folder name".into(), b"project-Hz88-classified".to_vec()),
    ];
    for (name, data) in &files_in {
        let base = Path::new(name).file_name().unwrap().to_str().unwrap();
        needles.push((format!("name of {name}"), base.as_bytes().to_vec()));
        for at in [0, data.len() / 2, data.len() - 32] {
            needles.push((format!("{name} bytes at {at}"), data[at..at + 32].to_vec()));
        }
        let h = blake3::hash(data);
        needles.push((format!("hash of {name}"), h.as_bytes().to_vec()));
        needles.push((
            format!("hex hash of {name}"),
            h.to_hex().as_bytes().to_vec(),
        ));
        let mut off = 0;
        for len in repo.chunker().cut_lengths(data) {
            let h = blake3::hash(&data[off..off + len]);
            needles.push((format!("chunk hash of {name}@{off}"), h.as_bytes().to_vec()));
            needles.push((
                format!("chunk hex of {name}@{off}"),
                h.to_hex().as_bytes().to_vec(),
            ));
            off += len;
        }
    }
    drop(repo);
    let mut scanned = 0;
    for f in files(&env.repo_path())
        .into_iter()
        .chain(files(&env.path("cache")))
    {
        let bytes = fs::read(&f).unwrap();
        scanned += bytes.len();
        let hits = found_in(&bytes, &needles);
        assert!(hits.is_empty(), "{} reveals {hits:?}", f.display());
    }
    assert!(
        scanned > 3 << 19,
        "the scan covered the data ({scanned} bytes)"
    );

    // Key files: argon2id with its parameters, a random salt, nothing else readable.
    let keys = files(&env.repo_path().join("keys"));
    assert_eq!(keys.len(), 1);
    let kf: serde_json::Value = serde_json::from_slice(&fs::read(&keys[0]).unwrap()).unwrap();
    assert_eq!(kf["kdf"], "argon2id");
    assert_eq!(kf["kdf_params"]["m_cost"], 8 * 1024);
    assert_eq!(kf["kdf_params"]["t_cost"], 1);
    assert_eq!(kf["kdf_params"]["p_cost"], 1);
    assert_eq!(kf["salt"].as_str().unwrap().len(), 64);
}

#[test]
fn key_types_never_print_their_bytes() {
    let master = MasterKey::generate();
    let bytes = *master.as_bytes();
    let forms = |b: &[u8; 32]| [hex::encode(b), format!("{b:?}"), format!("{:?}", &b[..4])];
    let dbg = format!("{master:?} {:#?}", master);
    for f in forms(&bytes) {
        assert!(!dbg.contains(&f), "MasterKey Debug shows its bytes: {dbg}");
    }
    let sub = master.subkeys();
    let dbg = format!("{sub:?} {:?} {:?}", sub.data, sub.meta);
    for f in forms(&sub.chunk_id).into_iter().chain(forms(&bytes)) {
        assert!(!dbg.contains(&f), "SubKeys Debug shows key bytes: {dbg}");
    }
    let seal = SealKey::from_bytes([0x5a; 32]);
    let dbg = format!("{seal:?}");
    assert!(!dbg.contains("5a5a") && !dbg.contains("90, 90"), "{dbg}");
    assert!(dbg.len() < 16, "{dbg}");
}
