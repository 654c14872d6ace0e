use super::*;
use std::io::Write;

fn aggregate<D: AsRef<[u8]>>(records: &[(&str, D)]) -> Vec<u8> {
    let mut agg = Aggregator::new(1 << 20);
    for (k, d) in records {
        assert!(agg.add(k, d.as_ref()));
    }
    agg.finish().expect("non-empty").1
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

#[test]
fn round_trip_keeps_order_keys_and_sub_sequences() {
    let input: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| {
            (
                format!("pk-{}", i % 7),
                format!("{{\"n\":{i}}}").into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = input
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_slice()))
        .collect();
    let bytes = aggregate(&refs);
    assert!(bytes.starts_with(&KPL_MAGIC));
    assert!(is_valid_aggregate(&bytes));
    let out = deaggregate(&bytes, Some("outer"));
    assert_eq!(out.len(), 100);
    for (i, (r, (k, d))) in out.iter().zip(&input).enumerate() {
        assert_eq!(r.sub_sequence, i as u64);
        assert_eq!(r.partition_key.as_deref(), Some(k.as_str()));
        assert_eq!(&r.data, d);
        assert!(r.aggregated);
        assert_eq!(r.explicit_hash_key, None);
    }
}

#[test]
fn plain_record_passes_through_with_its_key() {
    let out = deaggregate(b"{\"a\":1}", Some("k"));
    assert_eq!(
        out,
        vec![UserRecord {
            data: b"{\"a\":1}".to_vec(),
            partition_key: Some("k".into()),
            explicit_hash_key: None,
            sub_sequence: 0,
            aggregated: false
        }]
    );
}

#[test]
fn md5_mismatch_passes_through_unchanged() {
    let mut bytes = aggregate(&[("a", b"one"), ("b", b"two")]);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let out = deaggregate(&bytes, Some("k"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data, bytes);
    assert!(!out[0].aggregated);
}

#[test]
fn corrupt_protobuf_with_matching_md5_passes_through() {
    // Field 3 announces 100 bytes but only 2 follow; the digest is right for these bytes.
    let message = [0x1a, 100, 0x08, 0x00];
    let mut bytes = KPL_MAGIC.to_vec();
    bytes.extend_from_slice(&message);
    bytes.extend_from_slice(Md5::digest(message).as_slice());
    assert!(!is_valid_aggregate(&bytes));
    let out = deaggregate(&bytes, None);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data, bytes);
}

#[test]
fn missing_required_field_and_bad_index_pass_through() {
    let wrap = |message: &[u8]| {
        let mut bytes = KPL_MAGIC.to_vec();
        bytes.extend_from_slice(message);
        bytes.extend_from_slice(Md5::digest(message).as_slice());
        bytes
    };
    // Record without data (field 3).
    let no_data = wrap(&[0x0a, 1, b'k', 0x1a, 2, 0x08, 0x00]);
    assert!(!is_valid_aggregate(&no_data));
    // Record whose partition key index 5 is outside a table of one key.
    let bad_index = wrap(&[0x0a, 1, b'k', 0x1a, 5, 0x08, 0x05, 0x1a, 1, b'x']);
    assert!(!is_valid_aggregate(&bad_index));
    // The same with index 0 is fine.
    let good = wrap(&[0x0a, 1, b'k', 0x1a, 5, 0x08, 0x00, 0x1a, 1, b'x']);
    assert_eq!(deaggregate(&good, None)[0].data, b"x");
    for bytes in [no_data, bad_index] {
        assert_eq!(
            deaggregate(&bytes, None),
            vec![UserRecord {
                data: bytes.clone(),
                partition_key: None,
                explicit_hash_key: None,
                sub_sequence: 0,
                aggregated: false
            }]
        );
    }
}

#[test]
fn too_short_after_magic_passes_through() {
    let mut bytes = KPL_MAGIC.to_vec();
    bytes.extend_from_slice(&[0u8; 16]);
    assert_eq!(deaggregate(&bytes, None)[0].data, bytes);
    assert!(!is_valid_aggregate(&KPL_MAGIC));
}

#[test]
fn gzip_records_are_decompressed_outer_and_inner() {
    let plain = deaggregate(&gzip(b"{\"z\":1}"), None);
    assert_eq!(plain[0].data, b"{\"z\":1}");
    let inner = aggregate(&[("a", gzip(b"{\"x\":1}")), ("a", b"{\"y\":2}".to_vec())]);
    let out = deaggregate(&inner, None);
    assert_eq!(
        out.iter().map(|r| r.data.as_slice()).collect::<Vec<_>>(),
        vec![&b"{\"x\":1}"[..], b"{\"y\":2}"]
    );
    let outer = deaggregate(&gzip(&inner), None);
    assert_eq!(outer.len(), 2);
    assert!(outer[1].aggregated);
    // Gzip magic but garbage after it: passed through as is.
    let broken = [0x1f, 0x8b, 0x00, 0x01, 0x02];
    assert_eq!(deaggregate(&broken, None)[0].data, broken);
}

#[test]
fn aggregator_respects_max_bytes() {
    let mut agg = Aggregator::new(1000);
    let data = [b'x'; 100];
    let mut added = 0;
    while agg.add("key", &data) {
        added += 1;
    }
    assert!((8..10).contains(&added), "added {added}");
    let (key, bytes) = agg.finish().expect("aggregate");
    assert_eq!(key, "key");
    assert!(bytes.len() + key.len() <= 1000, "{}", bytes.len());
    assert_eq!(deaggregate(&bytes, None).len(), added);
    assert!(agg.is_empty() && agg.finish().is_none());
}

#[test]
fn unknown_fields_and_tags_are_skipped() {
    // pk table "k", a record with a tag {key:"t"} and an unknown fixed32 field 9, data "d".
    let record = [
        0x08, 0x00, 0x22, 3, 0x0a, 1, b't', 0x4d, 1, 2, 3, 4, 0x1a, 1, b'd',
    ];
    let mut message = vec![0x0a, 1, b'k', 0x1a, record.len() as u8];
    message.extend_from_slice(&record);
    let mut bytes = KPL_MAGIC.to_vec();
    bytes.extend_from_slice(&message);
    bytes.extend_from_slice(Md5::digest(&message).as_slice());
    let out = deaggregate(&bytes, None);
    assert_eq!(out.len(), 1);
    assert!(out[0].aggregated);
    assert_eq!(out[0].data, b"d");
}
