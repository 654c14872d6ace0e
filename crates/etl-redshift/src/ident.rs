//! SQL identifiers and literals built from configuration: validated, then quoted.
//!
//! Every name that reaches generated SQL (schema, table, column, view) goes through [`Ident`],
//! which accepts only `[a-z_][a-z0-9_$]*` up to 127 bytes and renders it double-quoted. Every
//! string literal (S3 URL, IAM role ARN, batch id) goes through [`literal`], which refuses
//! backslashes and control characters (Redshift treats `\` as an escape inside literals) and
//! doubles single quotes. A hostile value such as `x"; drop table y; --` is refused, never
//! escaped into something that runs.

use crate::error::RedshiftError;
use std::fmt;

/// Longest identifier Redshift accepts, in bytes.
pub const MAX_IDENT_BYTES: usize = 127;

/// A validated SQL identifier; `Display` renders it double-quoted (`"call_events"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident(String);

impl Ident {
    /// Checks `name` (`what` names the setting in the error, e.g. `schema`).
    pub fn new(what: &str, name: &str) -> Result<Self, RedshiftError> {
        let refuse = |reason: &str| RedshiftError::InvalidIdentifier {
            what: what.to_string(),
            value: name.to_string(),
            reason: reason.to_string(),
        };
        if name.is_empty() {
            return Err(refuse("it is empty"));
        }
        if name.len() > MAX_IDENT_BYTES {
            return Err(refuse("it is longer than 127 bytes"));
        }
        let mut chars = name.chars();
        if !matches!(chars.next(), Some('a'..='z' | '_')) {
            return Err(refuse("it must start with a lowercase letter or `_`"));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$') {
            return Err(refuse(
                "only lowercase letters, digits, `_` and `$` are allowed",
            ));
        }
        Ok(Ident(name.to_string()))
    }

    /// The bare name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// A schema-qualified name, rendered `"schema"."name"`.
pub fn qualified(schema: &Ident, name: &Ident) -> String {
    format!("{schema}.{name}")
}

/// `value` as a single-quoted SQL string literal (`'` doubled). Backslashes, control characters
/// and NUL are refused: Redshift reads `\` as an escape inside literals.
pub fn literal(what: &str, value: &str) -> Result<String, RedshiftError> {
    if let Some(bad) = value.chars().find(|c| *c == '\\' || c.is_control()) {
        return Err(RedshiftError::InvalidLiteral {
            what: what.to_string(),
            value: value.to_string(),
            reason: format!(
                "it contains {bad:?}; backslashes and control characters are not allowed"
            ),
        });
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// Checks an IAM role ARN (`arn:aws:iam::123456789012:role/Name`, also `aws-cn`/`aws-us-gov`).
pub fn iam_role_arn(value: &str) -> Result<String, RedshiftError> {
    let refuse = |reason: &str| RedshiftError::InvalidLiteral {
        what: "iam_role_arn".into(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let rest = value
        .strip_prefix("arn:")
        .ok_or_else(|| refuse("it must start with `arn:`"))?;
    let mut parts = rest.splitn(5, ':');
    let (partition, service, region, account, resource) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    );
    let partition_ok = matches!(partition, Some("aws" | "aws-cn" | "aws-us-gov"));
    if !partition_ok || service != Some("iam") || region != Some("") {
        return Err(refuse("expected `arn:aws:iam::<account>:role/<name>`"));
    }
    if !account.is_some_and(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())) {
        return Err(refuse("the account must be 12 digits"));
    }
    let name = resource
        .and_then(|r| r.strip_prefix("role/"))
        .ok_or_else(|| refuse("the resource must be `role/<name>`"))?;
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_/-".contains(c));
    if !name_ok {
        return Err(refuse(
            "the role name may hold letters, digits and +=,.@_/- only",
        ));
    }
    literal("iam_role_arn", value)
}

/// Splits `s3://bucket/key` into bucket and key, checking the bucket name and that the key is
/// not empty and holds no quote, backslash or control character.
pub fn s3_url(value: &str) -> Result<(String, String), RedshiftError> {
    let refuse = |reason: &str| RedshiftError::InvalidLiteral {
        what: "s3 url".into(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let rest = value
        .strip_prefix("s3://")
        .ok_or_else(|| refuse("it must start with `s3://`"))?;
    let (bucket, key) = rest
        .split_once('/')
        .ok_or_else(|| refuse("it must be `s3://bucket/key`"))?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(refuse(
            "the bucket name must be 3-63 lowercase letters, digits, `.` or `-`",
        ));
    }
    if key.is_empty()
        || key
            .chars()
            .any(|c| c == '\'' || c == '"' || c == '\\' || c.is_control())
    {
        return Err(refuse(
            "the key must not be empty nor hold quotes, backslashes or control characters",
        ));
    }
    Ok((bucket.to_string(), key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "x\"; drop table y; --",
            "",
            "Upper",
            "1abc",
            "a b",
            "a.b",
            "a-b",
            "a;b",
            "ä",
            &"a".repeat(128),
        ] {
            let err = Ident::new("table", bad).expect_err(bad);
            assert!(err.to_string().contains("table"), "{err}");
        }
        assert_eq!(
            Ident::new("schema", "analytics_2")
                .map(|i| i.to_string())
                .ok(),
            Some("\"analytics_2\"".into())
        );
    }

    #[test]
    fn literals_double_quotes_and_refuse_escapes() {
        assert_eq!(literal("x", "it's").ok(), Some("'it''s'".into()));
        assert!(literal("x", "a\\'; drop table y; --").is_err());
        assert!(literal("x", "a\nb").is_err());
    }

    #[test]
    fn role_arns_and_s3_urls_are_checked() {
        assert!(iam_role_arn("arn:aws:iam::123456789012:role/RedshiftCopy").is_ok());
        for bad in [
            "arn:aws:iam::123456789012:role/x'; drop table y; --",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::12345:role/R",
            "RedshiftCopy",
        ] {
            assert!(iam_role_arn(bad).is_err(), "{bad}");
        }
        assert_eq!(
            s3_url("s3://my-bucket/a/b.parquet").ok(),
            Some(("my-bucket".into(), "a/b.parquet".into()))
        );
        for bad in [
            "s3://B/k",
            "s3://bucket/",
            "s3://bucket/k'x",
            "http://bucket/k",
            "s3://bucket",
        ] {
            assert!(s3_url(bad).is_err(), "{bad}");
        }
    }
}
