#![no_main]
//! Blob opening: raw bytes as a sealed blob; the input as a blob payload (compression byte ‖
//! body) sealed under the right key and AAD, which reaches decompression and its size limits;
//! and the input as a plaintext, which must survive seal → open.

use backup_to_s3::codec::Codec;
use backup_to_s3::crypto::aead;
use backup_to_s3::format::blob::blob_aad;
use backup_to_s3::{BlobKind, Id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let kind = if selector & 1 == 0 {
        BlobKind::Data
    } else {
        BlobKind::Tree
    };
    let level = if selector & 2 == 0 { 0 } else { 3 };
    let codec = Codec::new(fuzz_common::subkeys(), level);

    // Arbitrary sealed bytes: authentication must fail, without panicking.
    let id = Id([selector; 32]);
    assert!(codec.open(kind, &id, rest).is_err());

    // Arbitrary payload under a valid seal: decompression and limits run; the id check fails
    // unless the payload happens to decode to the plaintext of `id`.
    let sealed = aead::seal_with_nonce(
        codec.keys().seal_key(kind),
        &[0u8; 24],
        &blob_aad(kind, &id),
        rest,
    );
    let opened = codec.open(kind, &id, &sealed);
    // In place, with a reused scratch buffer, the verdict and plaintext are the same.
    let mut in_place = sealed.clone();
    let mut scratch = vec![0u8; 4096];
    let opened_in_place = codec.open_in_place(kind, &id, &mut in_place, &mut scratch);
    assert_eq!(opened.ok().as_deref(), opened_in_place.ok());
    assert!(codec.authenticates(kind, &id, &sealed));

    // Arbitrary plaintext: seal → open is the identity, and the other kind cannot open it.
    let true_id = codec.id(rest);
    let blob = codec.seal_with_nonce(kind, true_id, rest, &[7u8; 24]);
    assert_eq!(blob.raw_length as usize, rest.len());
    assert_eq!(
        codec
            .open(kind, &true_id, &blob.sealed)
            .expect("sealed blob opens"),
        rest
    );
    let other = if kind == BlobKind::Data {
        BlobKind::Tree
    } else {
        BlobKind::Data
    };
    assert!(codec.open(other, &true_id, &blob.sealed).is_err());
});
