//! CIFAR-10's binary batch format: parsing what the encoder in `testkit` writes, and the errors
//! that name the file.

use std::path::Path;

use data::ImageSet;
use data::cifar::{RECORD, SIDE, parse_batch};
use testkit::synthetic::cifar_batch as encode_batch;

fn batch() -> ImageSet {
    let mut set = ImageSet::new(SIDE);
    for i in 0..10_000 {
        let image: Vec<u8> = (0..RECORD - 1).map(|p| ((p + i) % 251) as u8).collect();
        set.push(&image, (i % 10) as u16);
    }
    set
}

#[test]
fn a_batch_survives_encoding() {
    let set = batch();
    let parsed = parse_batch(&encode_batch(&set), 10, Path::new("b.bin")).unwrap();
    assert_eq!(parsed, set);
}

#[test]
fn truncated_batch_names_the_file() {
    let bytes = encode_batch(&batch());
    let err =
        parse_batch(&bytes[..bytes.len() - 5], 10, Path::new("data_batch_3.bin")).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("data_batch_3.bin: "), "{message}");
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn bad_label_is_an_error() {
    let mut bytes = encode_batch(&batch());
    bytes[RECORD * 7] = 200;
    let err = parse_batch(&bytes, 10, Path::new("b.bin")).unwrap_err();
    assert!(err.to_string().contains("record 7 has label 200"), "{err}");
}
