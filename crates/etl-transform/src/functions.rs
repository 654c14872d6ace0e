//! SQL functions registered for the transform queries.

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::common::{exec_err, Result};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The secret key of `mask_phone`. A plain SHA-256 of a phone number can be reversed by brute
/// force (about 10^10 numbers per country code), so numbers are hashed with HMAC-SHA256 under
/// this key. Keep it secret and stable: changing it changes every masked value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MaskKey(Arc<[u8]>);

/// Shortest accepted key, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

impl MaskKey {
    /// A key from secret bytes; refuses keys shorter than [`MIN_KEY_BYTES`].
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the masking key has {} bytes; use at least {MIN_KEY_BYTES} random bytes (e.g. `openssl rand -hex 32`)",
                secret.len()
            ));
        }
        Ok(MaskKey(Arc::from(secret)))
    }

    /// HMAC-SHA256 of `value` under this key, as lowercase hex.
    pub fn mask(&self, value: &str) -> String {
        let mut out = [0u8; 64];
        hmac_hex(&self.mac(), value, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; the length was checked in `new`.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }
}

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskKey(<{} secret bytes>)", self.0.len())
    }
}

fn hmac_hex(keyed: &Hmac<Sha256>, value: &str, out: &mut [u8; 64]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut mac = keyed.clone();
    mac.update(value.as_bytes());
    let digest = mac.finalize().into_bytes();
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}

pub(crate) fn register(ctx: &SessionContext, key: &MaskKey) {
    ctx.register_udf(ScalarUDF::from(MaskPhone {
        key: key.clone(),
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
    }));
    for part in [DatePart::Dt, DatePart::Hour] {
        ctx.register_udf(ScalarUDF::from(LakePartition {
            part,
            signature: Signature::any(1, Volatility::Immutable),
        }));
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MaskPhone {
    key: MaskKey,
    signature: Signature,
}

impl ScalarUDFImpl for MaskPhone {
    fn name(&self) -> &str {
        "mask_phone"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = one_array(&args)?;
        let strings = input.as_string::<i32>();
        let keyed = self.key.mac();
        let mut out = StringBuilder::with_capacity(strings.len(), strings.len() * 64);
        // A number recurs in every event of its call (started, ringing, answered, samples,
        // ended): remember each distinct number's digest for this batch instead of recomputing
        // the HMAC, which dominates the cost of the function.
        let mut digests: HashMap<&str, [u8; 64]> = HashMap::with_capacity(strings.len() / 4);
        for value in strings.iter() {
            match value {
                Some(v) => {
                    let hex = digests.entry(v).or_insert_with(|| {
                        let mut hex = [0u8; 64];
                        hmac_hex(&keyed, v, &mut hex);
                        hex
                    });
                    // Hex digits are ASCII, so this never fails.
                    out.append_value(std::str::from_utf8(hex).unwrap_or_default());
                }
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DatePart {
    Dt,
    Hour,
}

/// `lake_dt(ts)` = 'YYYY-MM-DD' and `lake_hour(ts)` = 'HH' of a millisecond timestamp, in UTC.
/// Arithmetic instead of `to_char`: it runs for every row of every batch.
#[derive(Debug, PartialEq, Eq, Hash)]
struct LakePartition {
    part: DatePart,
    signature: Signature,
}

impl ScalarUDFImpl for LakePartition {
    fn name(&self) -> &str {
        match self.part {
            DatePart::Dt => "lake_dt",
            DatePart::Hour => "lake_hour",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::Timestamp(TimeUnit::Millisecond, _)] => Ok(DataType::Utf8),
            other => exec_err!(
                "{} takes one millisecond timestamp, got {other:?}",
                self.name()
            ),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = one_array(&args)?;
        let ts = input.as_primitive::<TimestampMillisecondType>();
        let width = if self.part == DatePart::Dt { 10 } else { 2 };
        let mut out = StringBuilder::with_capacity(ts.len(), ts.len() * width);
        let mut last: Option<(i64, String)> = None;
        for v in ts.iter() {
            let Some(ms) = v else {
                out.append_null();
                continue;
            };
            let unit = match self.part {
                DatePart::Dt => ms.div_euclid(86_400_000),
                DatePart::Hour => ms.div_euclid(3_600_000),
            };
            match &last {
                Some((u, s)) if *u == unit => out.append_value(s),
                _ => {
                    let s = match self.part {
                        DatePart::Dt => format_day(unit),
                        DatePart::Hour => format!("{:02}", unit.rem_euclid(24)),
                    };
                    out.append_value(&s);
                    last = Some((unit, s));
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn one_array(args: &ScalarFunctionArgs) -> Result<ArrayRef> {
    match args.args.as_slice() {
        [arg] => arg.to_array(args.number_rows),
        other => exec_err!("expected one argument, got {}", other.len()),
    }
}

/// 'YYYY-MM-DD' of a day number since 1970-01-01.
pub(crate) fn format_day(days: i64) -> String {
    let (y, m, d) = etl_schema::calendar::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}
