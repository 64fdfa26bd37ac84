#![no_main]
//! Pack trailers and headers: the plaintext decoder, the trailer parser, and whole packs whose
//! header is the (sealed) fuzzer input.

use backup_to_s3::format::blob::AAD_PACK_HEADER;
use backup_to_s3::format::pack::{self, PACK_MAGIC, TRAILER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = fuzz_common::subkeys();
    // Raw bytes as a pack, and their tail as a trailer.
    let _ = pack::read_entries(data, &keys.meta);
    let tail = &data[data.len().saturating_sub(TRAILER_LEN)..];
    let _ = pack::parse_trailer(tail, data.len() as u64);

    // First 3 bytes: size of the data section (< 16 MiB); the rest: header plaintext.
    if data.len() < 3 {
        return;
    }
    let data_end = u32::from_le_bytes([data[0], data[1], data[2], 0]);
    let plain = &data[3..];
    if let Ok(entries) = pack::decode_header(plain, u64::from(data_end)) {
        assert_eq!(
            pack::encode_header(&entries),
            plain,
            "header encoding is canonical"
        );
        let total: u64 = entries.iter().map(|e| u64::from(e.length)).sum();
        assert_eq!(total, u64::from(data_end));
    }
    // A whole pack with that header; keep the data section small.
    let data_end = (data_end & 0xffff) as usize;
    let mut object = vec![0u8; data_end];
    let sealed = fuzz_common::seal(&keys.meta, AAD_PACK_HEADER, plain);
    object.extend_from_slice(&sealed);
    object.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    object.extend_from_slice(PACK_MAGIC);
    if let Ok(entries) = pack::read_entries(&object, &keys.meta) {
        for e in &entries {
            assert!(e.offset as usize + e.length as usize <= data_end);
        }
    }
});
