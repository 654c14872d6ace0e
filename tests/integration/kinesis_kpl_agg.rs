//! Cross-check of the KPL de-aggregator against records made by the reference Python package
//! `aws-kinesis-agg` (installed into `.tools/venv` by `scripts/setup-test-env`).

use etl_kinesis::kpl::{deaggregate, is_valid_aggregate};

use crate::{Context, Failure, TestResult};

/// Aggregates 2,500 user records (two partition keys, some explicit hash keys, 40 B to 2 KB) with
/// `aws_kinesis_agg.aggregator.RecordAggregator`; prints one line per user record
/// (`U <pk> <ehk or -> <hex data>`) and one per aggregate (`A <pk> <hex bytes>`) in order.
const SCRIPT: &str = r#"
from aws_kinesis_agg.aggregator import RecordAggregator
agg = RecordAggregator()
out = []
def flush(rec):
    if rec is not None:
        pk, ehk, data = rec.get_contents()
        out.append("A %s %s" % (pk, data.hex()))
for i in range(2500):
    pk = "key-%d" % (i % 2)
    ehk = str(i * 7919) if i % 5 == 0 else None
    data = ('{"event_id":"e-%05d","pad":"%s"}' % (i, "x" * ((i * 37) % 2000))).encode()
    print("U %s %s %s" % (pk, ehk or "-", data.hex()))
    flush(agg.add_user_record(pk, data, explicit_hash_key=ehk))
flush(agg.clear_and_get())
print("\n".join(out))
"#;

fn hex(text: &str) -> Result<Vec<u8>, Failure> {
    if !text.len().is_multiple_of(2) {
        return Err(Failure(format!("odd hex length {}", text.len())));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| Failure(format!("hex: {e}"))))
        .collect()
}

#[test]
fn kinesis_kpl_records_from_aws_kinesis_agg_deaggregate() -> TestResult {
    let python = etl_testbed::repo_root().join(".tools/venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .output()
        .map_err(|e| {
            Failure(format!(
                "{}: {e}: run scripts/setup-test-env",
                python.display()
            ))
        })?;
    let stdout = String::from_utf8(out.stdout).context("python output")?;
    assert!(
        out.status.success(),
        "python failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let mut expected: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
    let mut aggregates: Vec<(String, Vec<u8>)> = Vec::new();
    for line in stdout.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["U", pk, ehk, data] => expected.push((
                pk.to_string(),
                (*ehk != "-").then(|| ehk.to_string()),
                hex(data)?,
            )),
            ["A", pk, data] => aggregates.push((pk.to_string(), hex(data)?)),
            _ => return Err(Failure(format!("unexpected line {line:?}"))),
        }
    }
    assert_eq!(expected.len(), 2500);
    assert!(
        aggregates.len() > 1,
        "the reference aggregator split the records over several aggregates: {}",
        aggregates.len()
    );

    let mut got = Vec::new();
    for (pk, bytes) in &aggregates {
        assert!(
            is_valid_aggregate(bytes),
            "aggregate with key {pk} rejected"
        );
        let users = deaggregate(bytes, Some(pk));
        assert!(users
            .iter()
            .enumerate()
            .all(|(i, u)| u.aggregated && u.sub_sequence == i as u64));
        got.extend(users.into_iter().map(|u| {
            (
                u.partition_key.unwrap_or_default(),
                u.explicit_hash_key,
                u.data,
            )
        }));
    }
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "user record {i}");
    }

    // The same aggregate with one byte of its protobuf changed fails the MD5 check and passes
    // through unchanged, as the reference de-aggregator does.
    let mut corrupt = aggregates[0].1.clone();
    corrupt[10] ^= 0xff;
    let users = deaggregate(&corrupt, Some("k"));
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].data, corrupt);
    assert!(!users[0].aggregated);
    Ok(())
}
