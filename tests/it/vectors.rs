//! Test vectors of format-spec v1 (format-spec/vectors/*.json).
//!
//! Every vector is recomputed here from the library and compared with the committed file, and
//! every encoded value is decoded back. Where the spec allows, values are also recomputed from
//! the primitives (blake3, argon2, bincode, chacha20poly1305) with the constants spelled out
//! here, so a change of a library constant cannot silently move the vectors with it.
//!
//! Regenerate (only for a deliberate format change, format-spec §12):
//! `cargo test --test it vectors::regenerate -- --ignored`

use std::path::PathBuf;

use backup_to_s3::chunker::Chunker;
use backup_to_s3::codec::Codec;
use backup_to_s3::crypto::aead::{self, seal_with_nonce};
use backup_to_s3::crypto::{MasterKey, SealKey, SubKeys};
use backup_to_s3::format::blob::{self, blob_aad};
use backup_to_s3::format::config::{ChunkerParams, Config, CONFIG_MAGIC};
use backup_to_s3::format::index::{IndexObject, IndexPack};
use backup_to_s3::format::keyfile::{KdfParams, KeyFile};
use backup_to_s3::format::pack::{self, PackEntry, PACK_MAGIC};
use backup_to_s3::format::snapshot::{Snapshot, SnapshotSummary};
use backup_to_s3::format::tree::{Node, NodeKind, Timestamp, Tree, Xattr};
use backup_to_s3::{BlobKind, Id};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Fixed inputs

/// The vector master key: bytes 0x00, 0x01, …, 0x1f.
pub fn master_bytes() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

pub fn master() -> MasterKey {
    MasterKey::from_bytes(master_bytes())
}

pub fn subkeys() -> SubKeys {
    master().subkeys()
}

/// Nonce number `n`: 24 bytes all equal to `n`. Never do this outside test vectors.
fn nonce(n: u8) -> [u8; 24] {
    [n; 24]
}

fn id(fill: u8) -> Id {
    Id([fill; 32])
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn unh(v: &Value) -> Vec<u8> {
    hex::decode(
        v.as_str()
            .unwrap_or_else(|| panic!("not a hex string: {v}")),
    )
    .expect("valid hex")
}

fn id_of(v: &Value) -> Id {
    Id::from_slice(&unh(v)).expect("32-byte id")
}

fn bincode_standard<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encodes")
}

/// Subkey contexts as written in format-spec §3.1 (deliberately not the library's constants).
const CONTEXTS: [(&str, &str); 5] = [
    ("chunk_id", "backup-to-s3 v1 chunk id"),
    ("chunker_seed", "backup-to-s3 v1 chunker seed"),
    ("data_seal", "backup-to-s3 v1 data seal"),
    ("metadata_seal", "backup-to-s3 v1 metadata seal"),
    ("snapshot_signature", "backup-to-s3 v1 snapshot signature"),
];

// ---------------------------------------------------------------------------------------------
// Vector computation: one function per file

fn keys_json() -> Value {
    let mk = master_bytes();
    let mut subkeys = serde_json::Map::new();
    for (name, ctx) in CONTEXTS {
        subkeys.insert(
            name.to_string(),
            json!({ "context": ctx, "key": h(&blake3::derive_key(ctx, &mk)) }),
        );
    }
    let seed = subkeys_seed();
    json!({
        "description": "format-spec §3.1: subkey = BLAKE3-derive-key(context, master_key); chunker_seed = u64le of the first 8 bytes of the chunker seed subkey.",
        "master_key": h(&mk),
        "subkeys": subkeys,
        "chunker_seed": { "u64": seed.to_string(), "hex_u64le": h(&seed.to_le_bytes()) },
    })
}

fn subkeys_seed() -> u64 {
    let k = blake3::derive_key("backup-to-s3 v1 chunker seed", &master_bytes());
    u64::from_le_bytes(k[..8].try_into().expect("8 bytes"))
}

fn sample_plaintexts() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("abc", b"abc".to_vec()),
        (
            "bytes_0_to_999_mod_251",
            (0..1000u32).map(|i| (i % 251) as u8).collect(),
        ),
    ]
}

fn blob_ids_json() -> Value {
    let keys = subkeys();
    let items: Vec<Value> = sample_plaintexts()
        .into_iter()
        .map(|(name, p)| {
            json!({
                "name": name,
                "plaintext": h(&p),
                "blob_id": h(&keys.blob_id(&p).0),
                "object_name": Id::of_object(&p).to_hex(),
            })
        })
        .collect();
    json!({
        "description": "format-spec §3.3: blob_id = BLAKE3-keyed(chunk id subkey, plaintext); object_name = hex(BLAKE3(bytes)) (unkeyed).",
        "master_key": h(&master_bytes()),
        "vectors": items,
    })
}

/// The blobs of blobs.json: (name, kind, zstd level, plaintext, nonce number).
fn blob_inputs() -> Vec<(&'static str, BlobKind, i32, Vec<u8>, u8)> {
    let compressible: Vec<u8> = b"backup-to-s3 "
        .iter()
        .copied()
        .cycle()
        .take(64 << 10)
        .collect();
    let mut tree = vector_tree();
    vec![
        (
            "data_uncompressed",
            BlobKind::Data,
            0,
            b"hello, world\n".to_vec(),
            1,
        ),
        (
            "data_incompressible_at_level_3",
            BlobKind::Data,
            3,
            b"abc".to_vec(),
            2,
        ),
        ("data_zstd", BlobKind::Data, 3, compressible, 3),
        ("tree_uncompressed", BlobKind::Tree, 0, tree.encode(), 4),
    ]
}

fn blobs_json() -> Value {
    let keys = subkeys();
    let items: Vec<Value> = blob_inputs()
        .into_iter()
        .map(|(name, kind, level, plain, n)| {
            let codec = Codec::new(keys.clone(), level);
            let blob_id = codec.id(&plain);
            let sealed = codec.seal_with_nonce(kind, blob_id, &plain, &nonce(n));
            let payload = aead::open(
                keys.seal_key(kind),
                &blob_aad(kind, &blob_id),
                &sealed.sealed,
            )
            .expect("opens");
            json!({
                "name": name,
                "kind": kind as u8,
                "zstd_level": level,
                "plaintext_blake3": Id::of_object(&plain).to_hex(),
                "plaintext_len": plain.len(),
                "plaintext": if plain.len() <= 4096 { h(&plain) } else { String::new() },
                "blob_id": blob_id.to_hex(),
                "aad": h(&blob_aad(kind, &blob_id)),
                "nonce": h(&nonce(n)),
                "payload": h(&payload),
                "sealed": h(&sealed.sealed),
            })
        })
        .collect();
    json!({
        "description": "format-spec §4.1: sealed = nonce ‖ XChaCha20-Poly1305(K, nonce, aad, payload) ‖ tag, payload = compression byte ‖ body, aad = \"b2s3\" ‖ 01 ‖ kind ‖ id; K = data seal subkey (kind 0) or metadata seal subkey (kind 1). Large plaintexts are given by their BLAKE3 (plaintext \"\"): data_zstd's plaintext is \"backup-to-s3 \" repeated, truncated to 65536 bytes. The zstd bytes depend on the zstd library version; only their decompression is normative.",
        "master_key": h(&master_bytes()),
        "vectors": items,
    })
}

fn vector_config() -> Config {
    Config {
        repo_id: Id(std::array::from_fn(|i| 0xa0 + i as u8)),
        chunker: ChunkerParams::default(),
        compression_level: 3,
        pack_target_size: 16 << 20,
        created: 1_767_225_600,
    }
}

fn config_json() -> Value {
    let keys = subkeys();
    let config = vector_config();
    let mut plain = vec![1u8];
    plain.extend(bincode_standard(&config));
    let mut object = CONFIG_MAGIC.to_vec();
    object.extend_from_slice(&1u32.to_le_bytes());
    object.extend(seal_with_nonce(
        &keys.meta,
        &nonce(5),
        blob::AAD_CONFIG,
        &plain,
    ));
    json!({
        "description": "format-spec §2.3: object = \"B2S3CONF\" ‖ u32le 1 ‖ Seal(metadata seal subkey, \"b2s3 v1 config\", 01 ‖ bincode(Config)).",
        "master_key": h(&master_bytes()),
        "config": {
            "repo_id": config.repo_id.to_hex(),
            "min_size": config.chunker.min_size,
            "avg_size": config.chunker.avg_size,
            "max_size": config.chunker.max_size,
            "normalization": config.chunker.normalization,
            "compression_level": config.compression_level,
            "pack_target_size": config.pack_target_size,
            "created": config.created,
        },
        "aad": h(blob::AAD_CONFIG),
        "plaintext": h(&plain),
        "nonce": h(&nonce(5)),
        "object": h(&object),
    })
}

const PASSWORD: &[u8] = b"correct horse battery staple";

fn keyfile_salt() -> [u8; 32] {
    std::array::from_fn(|i| 0x40 + i as u8)
}

fn argon2id(password: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> [u8; 32] {
    let params = argon2::Params::new(m, t, p, Some(32)).expect("params");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    a.hash_password_into(password, salt, &mut out)
        .expect("argon2id");
    out
}

pub fn vector_keyfile() -> (KeyFile, [u8; 32], Vec<u8>) {
    let params = KdfParams {
        m_cost: 8192,
        t_cost: 1,
        p_cost: 1,
    };
    let salt = keyfile_salt();
    let kek = argon2id(PASSWORD, &salt, params.m_cost, params.t_cost, params.p_cost);
    let mut payload = vec![1u8];
    payload.extend_from_slice(&master_bytes());
    let sealed = seal_with_nonce(
        &SealKey::from_bytes(kek),
        &nonce(6),
        blob::AAD_KEY,
        &payload,
    );
    let kf = KeyFile {
        version: 1,
        created: "2026-01-01T00:00:00Z".to_string(),
        hostname: "vector-host".to_string(),
        username: "vector-user".to_string(),
        kdf: "argon2id".to_string(),
        kdf_params: params,
        salt: h(&salt),
        sealed: h(&sealed),
    };
    (kf, kek, payload)
}

fn keyfile_json() -> Value {
    let (kf, kek, payload) = vector_keyfile();
    let bytes = kf.encode();
    json!({
        "description": "format-spec §3.2: KEK = Argon2id v0x13 (password, salt, m_cost KiB, t_cost, p_cost, 32-byte output); sealed = Seal(KEK, \"b2s3 v1 key\", 01 ‖ master_key); key file = JSON, stored at keys/<hex(BLAKE3(json bytes))>.",
        "password": h(PASSWORD),
        "password_utf8": String::from_utf8_lossy(PASSWORD),
        "salt": kf.salt,
        "kdf_params": { "m_cost": kf.kdf_params.m_cost, "t_cost": kf.kdf_params.t_cost, "p_cost": kf.kdf_params.p_cost },
        "kek": h(&kek),
        "aad": h(blob::AAD_KEY),
        "payload": h(&payload),
        "nonce": h(&nonce(6)),
        "sealed": kf.sealed,
        "json": String::from_utf8(bytes.clone()).expect("utf-8"),
        "object_name": Id::of_object(&bytes).to_hex(),
        "master_key": h(&master_bytes()),
    })
}

/// Two data blobs in a pack; returns (pack bytes, entries, sealed blobs).
fn vector_pack() -> (Vec<u8>, Vec<PackEntry>, Vec<u8>, Vec<u8>) {
    let keys = subkeys();
    let codec = Codec::new(keys.clone(), 0);
    let mut data = Vec::new();
    let mut entries = Vec::new();
    for (i, plain) in [&b"first blob"[..], &b"second blob"[..]]
        .into_iter()
        .enumerate()
    {
        let blob_id = codec.id(plain);
        let sealed = codec.seal_with_nonce(BlobKind::Data, blob_id, plain, &nonce(10 + i as u8));
        entries.push(PackEntry {
            kind: BlobKind::Data,
            id: blob_id,
            offset: data.len() as u32,
            length: sealed.sealed.len() as u32,
            raw_length: plain.len() as u32,
        });
        data.extend_from_slice(&sealed.sealed);
    }
    let header = pack::encode_header(&entries);
    let sealed_header = seal_with_nonce(&keys.meta, &nonce(12), blob::AAD_PACK_HEADER, &header);
    let mut bytes = data;
    bytes.extend_from_slice(&sealed_header);
    bytes.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(PACK_MAGIC);
    (bytes, entries, header, sealed_header)
}

fn entry_json(e: &PackEntry) -> Value {
    json!({ "kind": e.kind as u8, "id": e.id.to_hex(), "offset": e.offset, "length": e.length, "raw_length": e.raw_length })
}

fn pack_json() -> Value {
    let (bytes, entries, header, sealed_header) = vector_pack();
    json!({
        "description": "format-spec §5: pack = sealed blobs ‖ Seal(metadata seal subkey, \"b2s3 v1 pack header\", header) ‖ u32le len(sealed header) ‖ \"B2S3PAK1\"; header = u32le n ‖ n × (kind ‖ id ‖ u32le length ‖ u32le raw_length). Blobs are uncompressed data blobs \"first blob\" (nonce 0a…) and \"second blob\" (nonce 0b…).",
        "master_key": h(&master_bytes()),
        "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
        "header_plaintext": h(&header),
        "header_aad": h(blob::AAD_PACK_HEADER),
        "header_nonce": h(&nonce(12)),
        "sealed_header": h(&sealed_header),
        "pack": h(&bytes),
        "pack_name": Id::of_object(&bytes).to_hex(),
    })
}

fn vector_index() -> IndexObject {
    let (bytes, entries, _, _) = vector_pack();
    IndexObject {
        supersedes: vec![id(0x11), id(0x22)],
        packs: vec![
            IndexPack {
                pack: Id::of_object(&bytes),
                entries,
            },
            IndexPack {
                pack: id(0x33),
                entries: vec![PackEntry {
                    kind: BlobKind::Tree,
                    id: id(0x44),
                    offset: 0,
                    length: 300,
                    raw_length: 1000,
                }],
            },
        ],
    }
}

fn index_json() -> Value {
    let keys = subkeys();
    let obj = vector_index();
    let plain = obj.encode_plain();
    let sealed = seal_with_nonce(&keys.meta, &nonce(13), blob::AAD_INDEX, &plain);
    json!({
        "description": "format-spec §6: sealed = Seal(metadata seal subkey, \"b2s3 v1 index\", plaintext); plaintext = 01 ‖ u32le s ‖ s × name ‖ u32le p ‖ p × (pack name ‖ u32le m ‖ m × (kind ‖ id ‖ u32le offset ‖ u32le length ‖ u32le raw_length)). The first pack is the one of pack.json.",
        "master_key": h(&master_bytes()),
        "supersedes": obj.supersedes.iter().map(Id::to_hex).collect::<Vec<_>>(),
        "packs": obj.packs.iter().map(|p| json!({ "pack": p.pack.to_hex(), "entries": p.entries.iter().map(entry_json).collect::<Vec<_>>() })).collect::<Vec<_>>(),
        "plaintext": h(&plain),
        "nonce": h(&nonce(13)),
        "sealed": h(&sealed),
        "object_name": Id::of_object(&sealed).to_hex(),
    })
}

/// A tree with one node of every kind, exercising every field.
pub fn vector_tree() -> Tree {
    let ts = |secs, nanos| Timestamp { secs, nanos };
    let mut file = Node::new(b"file.txt".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.uid = 1000;
    file.gid = 100;
    file.user = "alice".to_string();
    file.group = "users".to_string();
    file.mtime = ts(1_767_225_600, 123_456_789);
    file.atime = ts(1_767_225_601, 0);
    file.ctime = ts(1_767_225_602, 999_999_999);
    file.size = 300_000;
    file.inode = 1 << 40;
    file.device = 0xfd01;
    file.links = 2;
    file.content = vec![id(0x01), id(0x02)];
    file.xattrs = vec![Xattr {
        name: b"user.comment".to_vec(),
        value: b"\x00\xffbinary".to_vec(),
    }];
    let mut dir = Node::new(b"dir".to_vec(), NodeKind::Dir);
    dir.mode = 0o1777;
    dir.subtree = Some(id(0x03));
    dir.mtime = ts(-1, 500);
    let mut link = Node::new(b"link".to_vec(), NodeKind::Symlink);
    link.mode = 0o777;
    link.link_target = b"../outside/\xe9t\xe9".to_vec();
    let mut chr = Node::new(b"null".to_vec(), NodeKind::CharDevice);
    chr.rdev = 0x0103;
    let mut blk = Node::new(b"sda".to_vec(), NodeKind::BlockDevice);
    blk.rdev = 0x0800;
    blk.mode = 0o660;
    let fifo = Node::new(b"caf\xe9 fifo".to_vec(), NodeKind::Fifo);
    let mut sock = Node::new("sock\u{e9}t".as_bytes().to_vec(), NodeKind::Socket);
    sock.uid = u32::MAX;
    sock.inode = u64::MAX;
    Tree {
        nodes: vec![file, dir, link, chr, blk, fifo, sock],
    }
}

fn node_json(n: &Node) -> Value {
    let ts = |t: &Timestamp| json!([t.secs, t.nanos]);
    json!({
        "name": h(&n.name),
        "kind": format!("{:?}", n.kind),
        "mode": n.mode, "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
        "mtime": ts(&n.mtime), "atime": ts(&n.atime), "ctime": ts(&n.ctime),
        "size": n.size, "inode": n.inode, "device": n.device, "links": n.links, "rdev": n.rdev,
        "content": n.content.iter().map(Id::to_hex).collect::<Vec<_>>(),
        "subtree": n.subtree.map(|s| s.to_hex()),
        "link_target": h(&n.link_target),
        "xattrs": n.xattrs.iter().map(|x| json!([h(&x.name), h(&x.value)])).collect::<Vec<_>>(),
    })
}

fn tree_json() -> Value {
    let keys = subkeys();
    let mut tree = vector_tree();
    let plain = tree.encode();
    json!({
        "description": "format-spec §7: tree plaintext = 01 ‖ bincode(Tree) with nodes sorted by name bytes; blob_id = BLAKE3-keyed(chunk id subkey, plaintext). Timestamps are [secs, nanos]; names, link targets and xattrs are hex.",
        "master_key": h(&master_bytes()),
        "nodes": tree.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "plaintext": h(&plain),
        "blob_id": keys.blob_id(&plain).to_hex(),
    })
}

fn vector_snapshot() -> Snapshot {
    Snapshot {
        time_ns: 1_767_225_600_123_456_789,
        tz_offset_s: -18_000,
        hostname: "vector-host".to_string(),
        username: "vector-user".to_string(),
        paths: vec!["/home/alice".to_string(), "/etc".to_string()],
        tags: vec!["daily".to_string(), "vector".to_string()],
        parent: Some(id(0x55)),
        tree: id(0x66),
        original: None,
        program_version: "backup-to-s3 0.1.0".to_string(),
        summary: Some(SnapshotSummary {
            files_new: 1,
            files_changed: 2,
            files_unmodified: 3,
            dirs_new: 4,
            dirs_changed: 5,
            dirs_unmodified: 6,
            bytes_read: 70_000,
            bytes_total: 8_000_000_000,
            data_added: 9_000,
            chunks_new: 10,
            chunks_deduplicated: 11,
            files_unreadable: 0,
            duration_ms: 1234,
        }),
        signature: Vec::new(),
    }
}

fn snapshot_json() -> Value {
    let keys = subkeys();
    let snap = vector_snapshot();
    let plain = snap.encode_plain();
    let sealed = seal_with_nonce(&keys.meta, &nonce(14), blob::AAD_SNAPSHOT, &plain);
    json!({
        "description": "format-spec §8: sealed = Seal(metadata seal subkey, \"b2s3 v1 snapshot\", 01 ‖ bincode(Snapshot)); stored at snapshots/<hex(BLAKE3(sealed))>. The snapshot's fields are those of tests/it/vectors.rs vector_snapshot(); decode the plaintext to see them.",
        "master_key": h(&master_bytes()),
        "plaintext": h(&plain),
        "nonce": h(&nonce(14)),
        "sealed": h(&sealed),
        "object_name": Id::of_object(&sealed).to_hex(),
    })
}

const CHUNKER_BUFFER_LEN: usize = 8 << 20;
const CHUNKER_BUFFER_KEY: &str = "backup-to-s3 v1 chunker test vector";

/// 8 MiB of pseudo-random bytes: the first 8 MiB of the (unkeyed) BLAKE3 XOF of the ASCII
/// string `CHUNKER_BUFFER_KEY`.
pub fn chunker_buffer() -> Vec<u8> {
    let mut out = vec![0u8; CHUNKER_BUFFER_LEN];
    blake3::Hasher::new()
        .update(CHUNKER_BUFFER_KEY.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn chunker_json() -> Value {
    let data = chunker_buffer();
    let params = ChunkerParams::default();
    let seed = subkeys().chunker_seed;
    let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
    let gear_bytes: Vec<u8> = gear.iter().flat_map(|v| v.to_le_bytes()).collect();
    let seeded = Chunker::new(params.clone(), seed).cut_lengths(&data);
    let unseeded = Chunker::new(params.clone(), 0).cut_lengths(&data);
    let chunk_ids: Vec<String> = {
        let keys = subkeys();
        let mut off = 0;
        seeded
            .iter()
            .map(|&len| {
                let cid = keys.blob_id(&data[off..off + len]);
                off += len;
                cid.to_hex()
            })
            .collect()
    };
    assert!(
        gear.iter().zip(gear_ls.iter()).all(|(g, l)| *l == g << 1),
        "GEAR_LS = GEAR << 1 (format-spec §3.4)"
    );
    json!({
        "description": "format-spec §3.4: buffer = first 8388608 bytes of the BLAKE3 XOF of the ASCII string in buffer_recipe; chunked with fastcdc 5.0.0 v2020 and the default parameters, with the vector key's chunker seed and, for reference, with seed 0 (the unkeyed gear table). gear_table is fastcdc's GEAR as hex u64; gear_table_blake3 hashes its 256 u64le values.",
        "master_key": h(&master_bytes()),
        "buffer_recipe": CHUNKER_BUFFER_KEY,
        "buffer_len": CHUNKER_BUFFER_LEN,
        "buffer_blake3": Id::of_object(&data).to_hex(),
        "params": { "min_size": params.min_size, "avg_size": params.avg_size, "max_size": params.max_size, "normalization": params.normalization },
        "seed": seed.to_string(),
        "chunk_lengths_seeded": seeded,
        "chunk_ids_seeded": chunk_ids,
        "chunk_lengths_seed_0": unseeded,
        "gear_table": gear.iter().map(|v| format!("{v:016x}")).collect::<Vec<_>>(),
        "gear_table_blake3": Id::of_object(&gear_bytes).to_hex(),
    })
}

/// Hand-written bincode examples (format-spec §2.2), each (type, value, encoding).
fn bincode_examples() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("u64", "0".into(), "00"),
        ("u64", "250".into(), "fa"),
        ("u64", "251".into(), "fbfb00"),
        ("u64", "1000".into(), "fbe803"),
        ("u64", "65535".into(), "fbffff"),
        ("u64", "65536".into(), "fc00000100"),
        ("u64", "4294967295".into(), "fcffffffff"),
        ("u64", "4294967296".into(), "fd0000000001000000"),
        ("u64", "18446744073709551615".into(), "fdffffffffffffffff"),
        ("u32", "300".into(), "fb2c01"),
        ("i64", "0".into(), "00"),
        ("i64", "-1".into(), "01"),
        ("i64", "1".into(), "02"),
        ("i64", "-2".into(), "03"),
        ("i64", "-125".into(), "f9"),
        ("i64", "9223372036854775807".into(), "fdfeffffffffffffff"),
        ("i64", "-9223372036854775808".into(), "fdffffffffffffffff"),
        ("i32", "-18000".into(), "fb9f8c"),
        ("u8", "255".into(), "ff"),
        ("Option<u32>", "None".into(), "00"),
        ("Option<u32>", "Some(300)".into(), "01fb2c01"),
        ("String", "\"h\u{e9}\"".into(), "0368c3a9"),
        ("Vec<u8>", "[1, 2, 3]".into(), "03010203"),
        ("NodeKind", "Socket".into(), "06"),
        (
            "Tree",
            "one File node named \"a\", all other fields as Node::new (links = 1)".into(),
            "01010161000000000000000000000000000000010000000000",
        ),
    ]
}

fn bincode_encode_example(ty: &str, value: &str) -> Vec<u8> {
    match ty {
        "u64" => bincode_standard(&value.parse::<u64>().expect("u64")),
        "u32" => bincode_standard(&value.parse::<u32>().expect("u32")),
        "i64" => bincode_standard(&value.parse::<i64>().expect("i64")),
        "i32" => bincode_standard(&value.parse::<i32>().expect("i32")),
        "u8" => bincode_standard(&value.parse::<u8>().expect("u8")),
        "Option<u32>" => bincode_standard(&if value == "None" { None } else { Some(300u32) }),
        "String" => bincode_standard(&"h\u{e9}".to_string()),
        "Vec<u8>" => bincode_standard(&vec![1u8, 2, 3]),
        "NodeKind" => bincode_standard(&NodeKind::Socket),
        "Tree" => Tree {
            nodes: vec![Node::new(b"a".to_vec(), NodeKind::File)],
        }
        .encode(),
        other => panic!("no encoder for {other}"),
    }
}

fn bincode_json() -> Value {
    let items: Vec<Value> = bincode_examples()
        .into_iter()
        .map(|(ty, value, _)| json!({ "type": ty, "value": value, "encoding": h(&bincode_encode_example(ty, &value)) }))
        .collect();
    json!({
        "description": "format-spec §2.2: bincode 2.0.1 standard() encodings. The Tree example is a versioned plaintext (leading 01).",
        "vectors": items,
        "non_minimal_accepted": [ { "type": "u32", "encoding": "fb0500", "value": "5" }, { "type": "u64", "encoding": "fc05000000", "value": "5" } ],
        "rejected": [ { "type": "u32", "encoding": "fd0500000000000000" }, { "type": "u32", "encoding": "ff" }, { "type": "Option<u32>", "encoding": "02" } ],
    })
}

type Generator = fn() -> Value;

const FILES: [(&str, Generator); 11] = [
    ("keys", keys_json),
    ("blob_ids", blob_ids_json),
    ("blobs", blobs_json),
    ("config", config_json),
    ("keyfile", keyfile_json),
    ("pack", pack_json),
    ("index", index_json),
    ("tree", tree_json),
    ("snapshot", snapshot_json),
    ("chunker", chunker_json),
    ("bincode", bincode_json),
];

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("format-spec")
        .join("vectors")
}

pub fn load(name: &str) -> Value {
    let path = vectors_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Recompute `name` and compare with the committed file; returns the committed vectors.
fn check(name: &str) -> Value {
    let generate = FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, g)| *g)
        .expect("known vector file");
    let committed = load(name);
    let computed = generate();
    if let (Some(a), Some(b)) = (committed.as_object(), computed.as_object()) {
        for (k, v) in b {
            assert_eq!(a.get(k), Some(v), "{name}.json: field {k:?} differs from the library's value (format change? see format-spec §12)");
        }
    }
    assert_eq!(
        committed, computed,
        "{name}.json differs from the library's values"
    );
    committed
}

#[test]
#[ignore = "writes format-spec/vectors; run only for a deliberate format change"]
fn regenerate() {
    std::fs::create_dir_all(vectors_dir()).expect("create vectors dir");
    for (name, generate) in FILES {
        let text = serde_json::to_string_pretty(&generate()).expect("json") + "\n";
        std::fs::write(vectors_dir().join(format!("{name}.json")), text).expect("write vector");
    }
}

// ---------------------------------------------------------------------------------------------
// Checks: recompute, compare, decode back

#[test]
fn keys() {
    let v = check("keys");
    let keys = subkeys();
    assert_eq!(unh(&v["master_key"]), master_bytes());
    let sub = |n: &str| -> [u8; 32] { unh(&v["subkeys"][n]["key"]).try_into().expect("32 bytes") };
    // The library's subkeys are the ones the spec derives.
    assert_eq!(*keys.chunk_id, sub("chunk_id"));
    assert_eq!(*keys.signing, sub("snapshot_signature"));
    assert_eq!(
        keys.chunker_seed,
        u64::from_le_bytes(sub("chunker_seed")[..8].try_into().expect("8"))
    );
    assert_eq!(
        keys.chunker_seed.to_string(),
        v["chunker_seed"]["u64"].as_str().expect("str")
    );
    let probe = |k: &SealKey| seal_with_nonce(k, &nonce(0), b"probe", b"probe");
    assert_eq!(
        probe(&keys.data),
        probe(&SealKey::from_bytes(sub("data_seal")))
    );
    assert_eq!(
        probe(&keys.meta),
        probe(&SealKey::from_bytes(sub("metadata_seal")))
    );
    assert_eq!(probe(keys.seal_key(BlobKind::Data)), probe(&keys.data));
    assert_eq!(probe(keys.seal_key(BlobKind::Tree)), probe(&keys.meta));
}

#[test]
fn blob_ids() {
    let v = check("blob_ids");
    let chunk_id_key = blake3::derive_key("backup-to-s3 v1 chunk id", &master_bytes());
    for item in v["vectors"].as_array().expect("array") {
        let plain = unh(&item["plaintext"]);
        assert_eq!(
            unh(&item["blob_id"]),
            blake3::keyed_hash(&chunk_id_key, &plain).as_bytes()
        );
        assert_eq!(unh(&item["object_name"]), blake3::hash(&plain).as_bytes());
    }
}

#[test]
fn blobs() {
    let v = check("blobs");
    let keys = subkeys();
    for item in v["vectors"].as_array().expect("array") {
        let kind = BlobKind::from_u8(item["kind"].as_u64().expect("kind") as u8).expect("kind");
        let blob_id = id_of(&item["blob_id"]);
        let sealed = unh(&item["sealed"]);
        let payload = unh(&item["payload"]);
        // AAD layout: "b2s3" ‖ 01 ‖ kind ‖ id.
        let mut aad = b"b2s3\x01".to_vec();
        aad.push(kind as u8);
        aad.extend_from_slice(&blob_id.0);
        assert_eq!(unh(&item["aad"]), aad);
        // Sealing is deterministic given the nonce, whatever zstd produced.
        let n: [u8; 24] = unh(&item["nonce"]).try_into().expect("24-byte nonce");
        assert_eq!(
            seal_with_nonce(keys.seal_key(kind), &n, &aad, &payload),
            sealed
        );
        assert_eq!(sealed.len(), payload.len() + 40);
        // Decode back through the codec (decompression, limits, id check).
        let plain = Codec::new(keys.clone(), 0)
            .open(kind, &blob_id, &sealed)
            .expect("vector blob opens");
        assert_eq!(
            Id::of_object(&plain).to_hex(),
            item["plaintext_blake3"].as_str().expect("str")
        );
        assert_eq!(
            plain.len() as u64,
            item["plaintext_len"].as_u64().expect("len")
        );
        match payload[0] {
            0 => assert_eq!(&payload[1..], &plain[..]),
            1 => assert_eq!(
                zstd::bulk::decompress(&payload[1..], plain.len()).expect("zstd"),
                plain
            ),
            other => panic!("compression byte {other}"),
        }
        // The other kind, or another id, does not open it.
        let other = if kind == BlobKind::Data {
            BlobKind::Tree
        } else {
            BlobKind::Data
        };
        assert!(Codec::new(keys.clone(), 0)
            .open(other, &blob_id, &sealed)
            .is_err());
        assert!(Codec::new(keys.clone(), 0)
            .open(kind, &id(0xee), &sealed)
            .is_err());
    }
    let names: Vec<&str> = v["vectors"]
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"data_zstd"));
    let zstd_item = v["vectors"]
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["name"] == "data_zstd")
        .expect("zstd vector");
    assert!(
        unh(&zstd_item["payload"])[0] == 1,
        "the compressible vector is stored compressed"
    );
    let small = v["vectors"]
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["name"] == "data_incompressible_at_level_3")
        .expect("vector");
    assert!(
        unh(&small["payload"])[0] == 0,
        "a blob that does not shrink is stored uncompressed"
    );
}

#[test]
fn config() {
    let v = check("config");
    let keys = subkeys();
    let object = unh(&v["object"]);
    assert_eq!(&object[..12], b"B2S3CONF\x01\x00\x00\x00");
    assert_eq!(Config::peek_version(&object).expect("peek"), 1);
    let config = Config::decode(&object, &keys.meta).expect("vector config decodes");
    assert_eq!(config, vector_config());
    assert_eq!(unh(&v["aad"]), b"b2s3 v1 config");
    // The library's own encoding decodes to the same config.
    assert_eq!(
        Config::decode(&config.encode(&keys.meta), &keys.meta).expect("decodes"),
        config
    );
    // The plaintext spelled out: version, repo_id, then varints (§2.3).
    let plain = unh(&v["plaintext"]);
    let mut expect = vec![1u8];
    expect.extend_from_slice(&config.repo_id.0);
    expect.extend_from_slice(&[0xfc, 0x00, 0x00, 0x04, 0x00]); // min 262144
    expect.extend_from_slice(&[0xfc, 0x00, 0x00, 0x10, 0x00]); // avg 1048576
    expect.extend_from_slice(&[0xfc, 0x00, 0x00, 0x40, 0x00]); // max 4194304
    expect.push(1); // normalization (u8)
    expect.push(6); // compression level 3, zigzag
    expect.extend_from_slice(&[0xfc, 0x00, 0x00, 0x00, 0x01]); // 16 MiB
    expect.push(0xfc); // created, zigzag: 3534451200 fits in 32 bits
    expect.extend_from_slice(&(2 * 1_767_225_600u32).to_le_bytes());
    assert_eq!(plain, expect);
}

#[test]
fn keyfile() {
    let v = check("keyfile");
    let salt = unh(&v["salt"]);
    let p = &v["kdf_params"];
    let (m, t, par) = (
        p["m_cost"].as_u64().expect("m") as u32,
        p["t_cost"].as_u64().expect("t") as u32,
        p["p_cost"].as_u64().expect("p") as u32,
    );
    let kek = argon2id(&unh(&v["password"]), &salt, m, t, par);
    assert_eq!(kek.to_vec(), unh(&v["kek"]));
    let payload = aead::open(
        &SealKey::from_bytes(kek),
        b"b2s3 v1 key",
        &unh(&v["sealed"]),
    )
    .expect("payload opens");
    assert_eq!(payload, unh(&v["payload"]));
    assert_eq!(payload[0], 1);
    assert_eq!(&payload[1..], &master_bytes());
    // Decode the JSON and unlock it with the library.
    let json = v["json"].as_str().expect("json").as_bytes();
    assert_eq!(
        Id::of_object(json).to_hex(),
        v["object_name"].as_str().expect("name")
    );
    let kf = KeyFile::decode(json).expect("vector key file decodes");
    assert_eq!(
        kf.unlock(PASSWORD).expect("unlocks").as_bytes(),
        &master_bytes()
    );
    assert!(kf.unlock(b"wrong password").is_err());
}

#[test]
fn pack() {
    let v = check("pack");
    let keys = subkeys();
    let bytes = unh(&v["pack"]);
    assert_eq!(&bytes[bytes.len() - 8..], b"B2S3PAK1");
    let entries = pack::read_entries(&bytes, &keys.meta).expect("vector pack reads");
    let (_, expected, header, _) = vector_pack();
    assert_eq!(entries, expected);
    assert_eq!(
        pack::decode_header(
            &unh(&v["header_plaintext"]),
            entries.iter().map(|e| u64::from(e.length)).sum()
        )
        .expect("header"),
        entries
    );
    assert_eq!(header.len(), 4 + 41 * entries.len());
    // Every blob opens at its offset.
    let codec = Codec::new(keys.clone(), 0);
    let plains: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| {
            codec
                .open(
                    e.kind,
                    &e.id,
                    &bytes[e.offset as usize..(e.offset + e.length) as usize],
                )
                .expect("blob opens")
        })
        .collect();
    assert_eq!(
        plains,
        vec![b"first blob".to_vec(), b"second blob".to_vec()]
    );
    // The sealed header read separately, as with ranged reads.
    let sealed_header = unh(&v["sealed_header"]);
    assert_eq!(
        pack::open_header(&sealed_header, bytes.len() as u64, &keys.meta).expect("open_header"),
        entries
    );
}

#[test]
fn index() {
    let v = check("index");
    let keys = subkeys();
    let plain = unh(&v["plaintext"]);
    let obj = IndexObject::decode_plain(&plain).expect("vector index decodes");
    assert_eq!(obj, vector_index());
    assert_eq!(
        IndexObject::decode(&unh(&v["sealed"]), &keys.meta).expect("sealed index decodes"),
        obj
    );
    // The pack listed first is the pack vector, with the entries of its header.
    let pack_v = load("pack");
    assert_eq!(obj.packs[0].pack, id_of(&pack_v["pack_name"]));
    assert_eq!(plain[0], 1);
    assert_eq!(&plain[1..5], &2u32.to_le_bytes());
}

#[test]
fn tree() {
    let v = check("tree");
    let plain = unh(&v["plaintext"]);
    let tree = Tree::decode(&plain).expect("vector tree decodes");
    let mut expected = vector_tree();
    expected.encode(); // sorts
    assert_eq!(tree, expected);
    let kinds: std::collections::HashSet<_> = tree.nodes.iter().map(|n| n.kind).collect();
    assert_eq!(kinds.len(), 7, "one node of every NodeKind");
    assert_eq!(unh(&v["blob_id"]), subkeys().blob_id(&plain).0);
}

#[test]
fn snapshot() {
    let v = check("snapshot");
    let keys = subkeys();
    let snap = Snapshot::decode(&unh(&v["sealed"]), &keys.meta).expect("vector snapshot decodes");
    assert_eq!(snap, vector_snapshot());
    assert_eq!(
        Snapshot::decode_plain(&unh(&v["plaintext"])).expect("plaintext decodes"),
        snap
    );
    assert!(snap.signature.is_empty(), "§8.3: empty in v1");
}

#[test]
fn chunker() {
    let v = check("chunker");
    let data = chunker_buffer();
    let lengths: Vec<usize> = v["chunk_lengths_seeded"]
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("len") as usize)
        .collect();
    assert_eq!(lengths.iter().sum::<usize>(), data.len());
    // The streaming chunker (used by backups) cuts where the in-memory one does.
    let chunker = Chunker::new(ChunkerParams::default(), subkeys().chunker_seed);
    let streamed: Vec<usize> = chunker
        .chunks(&data[..])
        .map(|c| c.expect("chunk").len())
        .collect();
    assert_eq!(streamed, lengths);
    let unseeded: Vec<usize> = v["chunk_lengths_seed_0"]
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("len") as usize)
        .collect();
    assert_ne!(unseeded, lengths, "the seed moves the cut points");
}

#[test]
fn bincode_examples_match_spec() {
    let v = check("bincode");
    // The hand-written encodings above are the spec's (§2.2); the file must agree with them.
    for ((ty, value, encoding), item) in bincode_examples()
        .into_iter()
        .zip(v["vectors"].as_array().expect("array"))
    {
        assert_eq!(item["encoding"].as_str(), Some(encoding), "{ty} {value}");
    }
    let cfg = bincode::config::standard();
    let dec_u32 = |hexs: &str| {
        bincode::serde::decode_from_slice::<u32, _>(&hex::decode(hexs).expect("hex"), cfg)
            .map(|(x, _)| x)
    };
    let dec_u64 = |hexs: &str| {
        bincode::serde::decode_from_slice::<u64, _>(&hex::decode(hexs).expect("hex"), cfg)
            .map(|(x, _)| x)
    };
    assert_eq!(dec_u32("fb0500").expect("non-minimal u32"), 5);
    assert_eq!(dec_u64("fc05000000").expect("non-minimal u64"), 5);
    assert!(dec_u32("fd0500000000000000").is_err());
    assert!(dec_u32("ff").is_err());
    assert!(bincode::serde::decode_from_slice::<Option<u32>, _>(&[2], cfg).is_err());
    // The Tree example decodes with the library.
    let tree = Tree::decode(&hex::decode(bincode_examples().last().expect("tree").2).expect("hex"))
        .expect("decodes");
    assert_eq!(tree.nodes[0].links, 1);
}

#[test]
fn nonce_and_overhead_constants() {
    assert_eq!(aead::NONCE_LEN, 24);
    assert_eq!(aead::TAG_LEN, 16);
    assert_eq!(blob::AAD_LEN, 38);
    assert_eq!(pack::TRAILER_LEN, 12);
    assert_eq!(pack::HEADER_ENTRY_LEN, 41);
    assert_eq!(pack::MAX_HEADER_LEN, 42_991_660);
}
