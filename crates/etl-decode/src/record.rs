//! Checking one record: scan it into per-slot raw values, then validate them into typed values.
//!
//! Nothing here touches the column builders, so a rejected record needs no rollback. The order
//! of checks is fixed: syntax first (the whole record is scanned before any field is judged),
//! then duplicate keys / unknown struct keys, then fields in schema order (struct children right
//! after their struct). The first failure is the record's reason.

use crate::json::{parse_i64, unescape, Cursor, Kind, Raw, SyntaxError};
use crate::plan::{eq_bytes, is_e164, KeyTable, Leaf, Plan, Span, Ty, Val};
use crate::timestamp::{epoch_ms_in_range, parse_rfc3339};
use crate::RejectReason;

/// A failed check: the reason and the message of the future [`crate::Reject`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub reason: RejectReason,
    pub message: String,
}

impl Fail {
    pub(crate) fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Fail {
            reason,
            message: message.into(),
        }
    }
}

/// The reject for the syntax error recorded in `c`.
#[cold]
fn syntax(c: &Cursor<'_>) -> Fail {
    Fail::new(
        RejectReason::InvalidJson,
        format!("invalid JSON at byte {}: {}", c.err_pos, c.err_what),
    )
}

/// Records a syntax error at the cursor and returns its reject.
#[cold]
fn syntax_at(c: &mut Cursor<'_>, what: &'static str) -> Fail {
    let SyntaxError = c.err(what);
    syntax(c)
}

fn field(reason: RejectReason, path: &str, what: std::fmt::Arguments<'_>) -> Fail {
    Fail::new(reason, format!("field `{path}`: {what}"))
}

/// Shortens user text quoted in a message to 64 characters.
fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Per-record buffers, reused across records and calls.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Raw value per slot.
    pub raws: Vec<Raw>,
    /// Validated value per slot.
    pub vals: Vec<Val>,
    /// Unescaped strings of the current record.
    pub arena: String,
    /// Unescaped text of the key being looked up.
    key_buf: String,
    /// Unknown top-level members (key, value), in input order.
    pub unknown: Vec<(Raw, Raw)>,
    /// Unescaped key text of each unknown member, for duplicate detection.
    unknown_keys: Vec<Span>,
    order: Vec<usize>,
}

impl Scratch {
    pub(crate) fn new(plan: &Plan) -> Self {
        Scratch {
            raws: vec![Raw::ABSENT; plan.leaves.len()],
            vals: vec![Val::Null; plan.leaves.len()],
            ..Default::default()
        }
    }

    fn reset(&mut self) {
        self.raws.iter_mut().for_each(|r| *r = Raw::ABSENT);
        self.arena.clear();
        self.unknown.clear();
    }
}

/// Unescaped text of a key (`raw` is a string value); escaped keys are decoded into `buf`.
#[inline(always)]
fn key_text<'a>(rec: &'a str, raw: Raw, buf: &'a mut String) -> &'a str {
    let (s, e) = raw.inner();
    let body = rec.get(s..e).unwrap_or("");
    if raw.kind == (Kind::String { escaped: true }) {
        buf.clear();
        unescape(body, buf);
        buf.as_str()
    } else {
        body
    }
}

/// Span of a string value's text, unescaping into `arena` when needed.
#[inline(always)]
fn str_span(rec: &str, raw: Raw, arena: &mut String) -> Span {
    let (s, e) = raw.inner();
    if raw.kind == (Kind::String { escaped: true }) {
        let start = arena.len();
        unescape(rec.get(s..e).unwrap_or(""), arena);
        Span::in_arena(start, arena.len())
    } else {
        Span::in_record(s, e)
    }
}

impl Plan {
    /// Checks one UTF-8 record; on success `scratch.vals` and `scratch.unknown` describe it.
    pub(crate) fn check(&self, rec: &str, s: &mut Scratch) -> Result<(), Fail> {
        s.reset();
        if let Some(fail) = self.scan(rec, s)? {
            return Err(fail);
        }
        for i in 0..self.n_top {
            self.validate(i, rec, s)?;
        }
        extras_fit(s)
    }

    /// Scans the top-level object. `Err` for syntax / not an object; `Ok(Some)` for a duplicate
    /// key or unknown struct key found on the way (reported only if the syntax is fine).
    fn scan(&self, rec: &str, s: &mut Scratch) -> Result<Option<Fail>, Fail> {
        let mut c = Cursor::new(rec.as_bytes());
        c.skip_ws();
        match c.peek() {
            Some(b'{') => c.pos += 1,
            None => {
                return Err(Fail::new(
                    RejectReason::InvalidJson,
                    "invalid JSON: empty record",
                ))
            }
            Some(_) => {
                let raw = c.scan_value(0).map_err(|_| syntax(&c))?;
                c.skip_ws();
                if !c.at_end() {
                    return Err(syntax_at(
                        &mut c,
                        "trailing characters after the JSON value",
                    ));
                }
                let what = raw.kind.describe();
                return Err(Fail::new(
                    RejectReason::NotAnObject,
                    format!("expected a JSON object, got {what}"),
                ));
            }
        }
        let mut pending: Option<Fail> = None;
        c.skip_ws();
        if c.peek() == Some(b'}') {
            c.pos += 1;
        } else {
            let mut hint = 0;
            loop {
                c.skip_ws();
                if c.peek() != Some(b'"') {
                    return Err(syntax_at(&mut c, "expected a key string"));
                }
                let key = c.scan_string().map_err(|_| syntax(&c))?;
                c.expect(b':', "expected `:` after a key")
                    .map_err(|_| syntax(&c))?;
                c.skip_ws();
                let found = self
                    .keys
                    .find(key_text(rec, key, &mut s.key_buf).as_bytes(), hint);
                match found.and_then(|i| self.leaves.get(i).map(|l| (i, l))) {
                    Some((i, leaf)) => {
                        hint = i + 1;
                        let dup = s.raws.get(i).is_some_and(|r| r.kind != Kind::Absent);
                        if dup && pending.is_none() {
                            pending = Some(field(
                                RejectReason::DuplicateKey,
                                &leaf.path,
                                format_args!("key appears more than once"),
                            ));
                        }
                        let raw = match &leaf.ty {
                            Ty::Struct {
                                children,
                                keys,
                                listing,
                            } if c.peek() == Some(b'{') => {
                                let ctx = StructCtx {
                                    leaf,
                                    base: children.start,
                                    keys,
                                    listing,
                                };
                                scan_struct(&ctx, rec, &mut c, s, &mut pending)?
                            }
                            _ => c.scan_value(1).map_err(|_| syntax(&c))?,
                        };
                        if let (false, Some(slot)) = (dup, s.raws.get_mut(i)) {
                            *slot = raw;
                        }
                    }
                    None => {
                        let value = c.scan_value(1).map_err(|_| syntax(&c))?;
                        s.unknown.push((key, value));
                    }
                }
                c.skip_ws();
                match c.peek() {
                    Some(b',') => c.pos += 1,
                    Some(b'}') => {
                        c.pos += 1;
                        break;
                    }
                    _ => return Err(syntax_at(&mut c, "expected `,` or `}` after a value")),
                }
            }
        }
        c.skip_ws();
        if !c.at_end() {
            return Err(syntax_at(&mut c, "trailing characters after the object"));
        }
        if pending.is_none() && s.unknown.len() > 1 {
            pending = unknown_duplicate(rec, s);
        }
        Ok(pending)
    }

    /// Validates slot `i` into `s.vals[i]` (and a struct's children).
    fn validate(&self, i: usize, rec: &str, s: &mut Scratch) -> Result<(), Fail> {
        let (Some(leaf), Some(&raw)) = (self.leaves.get(i), s.raws.get(i)) else {
            return Ok(());
        };
        let val = if matches!(raw.kind, Kind::Absent | Kind::Null) {
            if leaf.required {
                let what = if raw.kind == Kind::Null {
                    "required but null"
                } else {
                    "required but missing"
                };
                return Err(field(
                    RejectReason::MissingField,
                    &leaf.path,
                    format_args!("{what}"),
                ));
            }
            Val::Null
        } else {
            self.typed(leaf, raw, rec, s)?
        };
        if let Some(slot) = s.vals.get_mut(i) {
            *slot = val;
        }
        Ok(())
    }

    fn typed(&self, leaf: &Leaf, raw: Raw, rec: &str, s: &mut Scratch) -> Result<Val, Fail> {
        let wrong = |expected: &str| {
            field(
                RejectReason::WrongType,
                &leaf.path,
                format_args!("expected {expected}, got {}", raw.kind.describe()),
            )
        };
        let raw_text = || rec.get(raw.range()).unwrap_or("");
        Ok(match &leaf.ty {
            Ty::Str { max_len } => {
                let Kind::String { .. } = raw.kind else {
                    return Err(wrong("a string"));
                };
                let span = str_span(rec, raw, &mut s.arena);
                if let Some(max) = *max_len {
                    if span.len() > max {
                        let n = span.len();
                        return Err(field(
                            RejectReason::TooLong,
                            &leaf.path,
                            format_args!("{n} bytes, longer than max_length {max}"),
                        ));
                    }
                }
                Val::Str(span)
            }
            Ty::Enum {
                values,
                listing,
                open,
            } => {
                let Kind::String { .. } = raw.kind else {
                    return Err(wrong("a string"));
                };
                let span = str_span(rec, raw, &mut s.arena);
                let text = span.text(rec, &s.arena);
                if values
                    .iter()
                    .any(|v| eq_bytes(v.as_bytes(), text.as_bytes()))
                {
                    return Ok(Val::Str(span));
                }
                let Some(open) = open else {
                    let q = quote(text);
                    return Err(field(
                        RejectReason::UnknownEnumValue,
                        &leaf.path,
                        format_args!("`{q}` is not one of: {listing}"),
                    ));
                };
                if text.len() > open.max_len {
                    let (n, max) = (text.len(), open.max_len);
                    return Err(field(
                        RejectReason::TooLong,
                        &leaf.path,
                        format_args!("{n} bytes, longer than max_length {max}"),
                    ));
                }
                match &open.pattern {
                    Some(Ok(re)) if !re.is_match(text) => {
                        let (q, p) = (quote(text), re.as_str());
                        return Err(field(
                            RejectReason::PatternMismatch,
                            &leaf.path,
                            format_args!(
                                "`{q}` is not a known value and does not match the pattern {p}"
                            ),
                        ));
                    }
                    Some(Err(e)) => {
                        return Err(field(
                            RejectReason::PatternMismatch,
                            &leaf.path,
                            format_args!("the schema's pattern does not compile: {e}"),
                        ));
                    }
                    _ => {}
                }
                Val::Str(span)
            }
            Ty::Phone => {
                let Kind::String { .. } = raw.kind else {
                    return Err(wrong("a string"));
                };
                let span = str_span(rec, raw, &mut s.arena);
                // The number is PII: the message never repeats it.
                if !is_e164(span.text(rec, &s.arena).as_bytes()) {
                    return Err(field(
                        RejectReason::InvalidPhone,
                        &leaf.path,
                        format_args!(
                            "not an E.164 number (`+` then 8 to 15 digits, the first one 1-9)"
                        ),
                    ));
                }
                Val::Str(span)
            }
            Ty::Int => match raw.kind {
                Kind::Number { is_int: true } => match parse_i64(raw_text().as_bytes()) {
                    Some(v) => Val::Int(v),
                    None => {
                        let q = quote(raw_text());
                        return Err(field(
                            RejectReason::WrongType,
                            &leaf.path,
                            format_args!("integer {q} is out of the int64 range"),
                        ));
                    }
                },
                _ => return Err(wrong("an integer")),
            },
            Ty::Double => match raw.kind {
                Kind::Number { .. } => match raw_text().parse::<f64>() {
                    Ok(v) if v.is_finite() => Val::Float(v),
                    _ => {
                        let q = quote(raw_text());
                        return Err(field(
                            RejectReason::WrongType,
                            &leaf.path,
                            format_args!("number {q} is out of the double range"),
                        ));
                    }
                },
                _ => return Err(wrong("a number")),
            },
            Ty::Bool => match raw.kind {
                Kind::True => Val::Bool(true),
                Kind::False => Val::Bool(false),
                _ => return Err(wrong("a boolean")),
            },
            Ty::Ts => match raw.kind {
                Kind::String { escaped } => {
                    let span = if escaped {
                        str_span(rec, raw, &mut s.arena)
                    } else {
                        {
                            let (a, b) = raw.inner();
                            Span::in_record(a, b)
                        }
                    };
                    let text = span.text(rec, &s.arena);
                    match parse_rfc3339(text.as_bytes()) {
                        Ok(ms) => Val::Int(ms),
                        Err(e) => {
                            let (q, why) = (quote(text), e.describe());
                            return Err(field(
                                RejectReason::InvalidTimestamp,
                                &leaf.path,
                                format_args!("`{q}`: {why}"),
                            ));
                        }
                    }
                }
                Kind::Number { is_int } => match parse_i64(raw_text().as_bytes())
                    .filter(|ms| is_int && epoch_ms_in_range(*ms))
                {
                    Some(ms) => Val::Int(ms),
                    None => {
                        let q = quote(raw_text());
                        return Err(field(
                            RejectReason::InvalidTimestamp,
                            &leaf.path,
                            format_args!("{q} is not integer epoch milliseconds within the years 1970..=9999"),
                        ));
                    }
                },
                _ => return Err(wrong("an RFC 3339 string or epoch milliseconds")),
            },
            Ty::Json { max_len } => {
                let n = raw.range().len();
                if n > *max_len {
                    return Err(field(
                        RejectReason::TooLong,
                        &leaf.path,
                        format_args!(
                            "{n} bytes of JSON, longer than the warehouse column's {max_len}"
                        ),
                    ));
                }
                Val::Str(Span::in_record(raw.start as usize, raw.end as usize))
            }
            Ty::Struct { children, .. } => {
                if raw.kind != Kind::Object {
                    return Err(wrong("an object"));
                }
                for c in children.clone() {
                    self.validate(c, rec, s)?;
                }
                Val::Present
            }
        })
    }
}

struct StructCtx<'p> {
    leaf: &'p Leaf,
    base: usize,
    keys: &'p KeyTable,
    listing: &'p str,
}

/// Scans a struct field's object (cursor on `{`) into its children's slots.
fn scan_struct(
    ctx: &StructCtx<'_>,
    rec: &str,
    c: &mut Cursor<'_>,
    s: &mut Scratch,
    pending: &mut Option<Fail>,
) -> Result<Raw, Fail> {
    let start = c.pos;
    c.pos += 1;
    c.skip_ws();
    if c.peek() == Some(b'}') {
        c.pos += 1;
        return Ok(Raw::new(Kind::Object, start, c.pos));
    }
    let mut hint = 0;
    loop {
        c.skip_ws();
        if c.peek() != Some(b'"') {
            return Err(syntax_at(c, "expected a key string"));
        }
        let key = c.scan_string().map_err(|_| syntax(c))?;
        c.expect(b':', "expected `:` after a key")
            .map_err(|_| syntax(c))?;
        c.skip_ws();
        let text = key_text(rec, key, &mut s.key_buf);
        match ctx.keys.find(text.as_bytes(), hint) {
            Some(local) => {
                hint = local + 1;
                let slot = ctx.base + local;
                let value = c.scan_value(2).map_err(|_| syntax(c))?;
                match s.raws.get_mut(slot) {
                    Some(r) if r.kind == Kind::Absent => *r = value,
                    _ => {
                        if pending.is_none() {
                            let path = format!("{}.{}", ctx.leaf.path, quote(text));
                            *pending = Some(field(
                                RejectReason::DuplicateKey,
                                &path,
                                format_args!("key appears more than once"),
                            ));
                        }
                    }
                }
            }
            None => {
                if pending.is_none() {
                    let (q, listing) = (quote(text), ctx.listing);
                    *pending = Some(field(
                        RejectReason::WrongType,
                        &ctx.leaf.path,
                        format_args!("unknown key `{q}` in the object (expected only: {listing})"),
                    ));
                }
                c.scan_value(2).map_err(|_| syntax(c))?;
            }
        }
        c.skip_ws();
        match c.peek() {
            Some(b',') => c.pos += 1,
            Some(b'}') => {
                c.pos += 1;
                return Ok(Raw::new(Kind::Object, start, c.pos));
            }
            _ => return Err(syntax_at(c, "expected `,` or `}` after a value")),
        }
    }
}

/// `extras` (the unknown keys as `{"k":v,…}`, see `builders.rs`) fits its warehouse column.
fn extras_fit(s: &Scratch) -> Result<(), Fail> {
    if s.unknown.is_empty() {
        return Ok(());
    }
    let n = 1 + s
        .unknown
        .iter()
        .map(|(k, v)| k.range().len() + 1 + v.range().len() + 1)
        .sum::<usize>();
    let max = etl_schema::WAREHOUSE_TEXT_MAX_BYTES;
    if n > max {
        return Err(field(
            RejectReason::TooLong,
            "extras",
            format_args!(
                "the keys the schema does not know make {n} bytes of JSON, longer than the warehouse column's {max}"
            ),
        ));
    }
    Ok(())
}

/// The first duplicate among the unknown top-level keys (compared after unescaping).
fn unknown_duplicate(rec: &str, s: &mut Scratch) -> Option<Fail> {
    s.unknown_keys.clear();
    for &(key, _) in &s.unknown {
        s.unknown_keys.push(str_span(rec, key, &mut s.arena));
    }
    let (keys, arena) = (&s.unknown_keys, s.arena.as_str());
    let text = |i: usize| keys.get(i).map_or("", |k| k.text(rec, arena));
    let dup = if keys.len() <= 16 {
        (1..keys.len()).find_map(|j| (0..j).find(|&i| text(i) == text(j)).map(|_| text(j)))
    } else {
        s.order.clear();
        s.order.extend(0..keys.len());
        s.order.sort_unstable_by(|&a, &b| text(a).cmp(text(b)));
        s.order.windows(2).find_map(|w| match w {
            [a, b] if text(*a) == text(*b) => Some(text(*a)),
            _ => None,
        })
    };
    dup.map(|k| {
        field(
            RejectReason::DuplicateKey,
            &quote(k),
            format_args!("key appears more than once"),
        )
    })
}
