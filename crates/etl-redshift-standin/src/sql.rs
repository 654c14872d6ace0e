//! The SQL adaptations: a small tokenizer, removal of Redshift-only table attributes,
//! `:name` parameters, and the parse of `COPY ... FORMAT AS PARQUET MANIFEST`.

/// One lexical token; concatenating the texts gives the input back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An unquoted word (keyword or identifier).
    Word(String),
    /// A single-quoted string literal, quotes included.
    Str(String),
    /// A double-quoted identifier, quotes included.
    Quoted(String),
    /// `:name` (a Data API parameter), without the colon.
    Param(String),
    /// Whitespace or a comment.
    Space(String),
    /// Any other character.
    Punct(char),
}

impl Tok {
    pub(crate) fn text(&self) -> String {
        match self {
            Tok::Word(s) | Tok::Str(s) | Tok::Quoted(s) | Tok::Space(s) => s.clone(),
            Tok::Param(s) => format!(":{s}"),
            Tok::Punct(c) => c.to_string(),
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }
}

pub(crate) fn tokenize(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let take_until = |start: usize, close: char| -> usize {
        // Index after the closing `close` (a doubled `close` is an escaped one).
        let mut j = start + 1;
        while j < chars.len() {
            if chars[j] == close {
                if chars.get(j + 1) == Some(&close) {
                    j += 2;
                    continue;
                }
                return j + 1;
            }
            j += 1;
        }
        chars.len()
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (tok, end) = if c == '\'' {
            let end = take_until(i, '\'');
            (Tok::Str(chars[i..end].iter().collect()), end)
        } else if c == '"' {
            let end = take_until(i, '"');
            (Tok::Quoted(chars[i..end].iter().collect()), end)
        } else if c == '-' && next == Some('-') {
            let end = chars[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(chars.len(), |p| i + p);
            (Tok::Space(chars[i..end].iter().collect()), end)
        } else if c == '/' && next == Some('*') {
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                .map_or(chars.len(), |j| j + 2);
            (Tok::Space(chars[i..end].iter().collect()), end)
        } else if c.is_whitespace() {
            let end = chars[i..]
                .iter()
                .position(|x| !x.is_whitespace())
                .map_or(chars.len(), |p| i + p);
            (Tok::Space(chars[i..end].iter().collect()), end)
        } else if c == ':' && next == Some(':') {
            out.push(Tok::Punct(':'));
            (Tok::Punct(':'), i + 2)
        } else if c == ':' && next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_') {
            let end = chars[i + 1..]
                .iter()
                .position(|x| !(x.is_ascii_alphanumeric() || *x == '_'))
                .map_or(chars.len(), |p| i + 1 + p);
            (Tok::Param(chars[i + 1..end].iter().collect()), end)
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let end = chars[i..]
                .iter()
                .position(|x| !(x.is_alphanumeric() || *x == '_' || *x == '$'))
                .map_or(chars.len(), |p| i + p);
            (Tok::Word(chars[i..end].iter().collect()), end)
        } else {
            (Tok::Punct(c), i + 1)
        };
        out.push(tok);
        i = end;
    }
    out
}

fn join(tokens: &[Tok]) -> String {
    tokens.iter().map(Tok::text).collect()
}

/// Index of the next non-space token at or after `i`.
fn skip_space(tokens: &[Tok], mut i: usize) -> usize {
    while matches!(tokens.get(i), Some(Tok::Space(_))) {
        i += 1;
    }
    i
}

/// Index after a parenthesised group starting at `i` (which must be `(`), or `i` if none.
fn skip_group(tokens: &[Tok], i: usize) -> usize {
    if tokens.get(i) != Some(&Tok::Punct('(')) {
        return i;
    }
    let mut depth = 0;
    for (j, t) in tokens.iter().enumerate().skip(i) {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// Removes what PostgreSQL lacks from DDL: `DISTSTYLE x`, `DISTKEY (c)`, `[COMPOUND |
/// INTERLEAVED] SORTKEY (c, …)` / `SORTKEY AUTO`, `ENCODE x`. Quoted text is left alone.
pub(crate) fn strip_redshift_attributes(sql: &str) -> String {
    let tokens = tokenize(sql);
    let mut out: Vec<Tok> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let after = skip_space(&tokens, i + 1);
        if t.is_word("DISTSTYLE") || t.is_word("ENCODE") {
            i = after + 1;
        } else if t.is_word("DISTKEY") {
            i = skip_group(&tokens, after);
        } else if (t.is_word("COMPOUND") || t.is_word("INTERLEAVED"))
            && tokens.get(after).is_some_and(|n| n.is_word("SORTKEY"))
        {
            i = after;
        } else if t.is_word("SORTKEY") {
            i = if tokens.get(after).is_some_and(|n| n.is_word("AUTO")) {
                after + 1
            } else {
                skip_group(&tokens, after)
            };
        } else {
            out.push(t.clone());
            i += 1;
        }
    }
    join(&out)
}

/// Replaces `:name` parameters by string literals (PostgreSQL types them from context, as
/// Redshift does). A parameter without a value is an error.
pub(crate) fn bind_parameters(sql: &str, params: &[(String, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    for tok in tokenize(sql) {
        match tok {
            Tok::Param(name) => {
                let value = params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| format!("ERROR: no value for parameter :{name}"))?;
                out.push('\'');
                out.push_str(&value.replace('\'', "''"));
                out.push('\'');
            }
            other => out.push_str(&other.text()),
        }
    }
    Ok(out)
}

/// A parsed `COPY target [(cols)] FROM 's3://…' IAM_ROLE '…' FORMAT AS PARQUET MANIFEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyParquet {
    /// The target as written (possibly schema-qualified and quoted).
    pub target: String,
    /// The column list as written, if any (`("a", b)`).
    pub columns: Option<String>,
    /// Number of columns in the list.
    pub column_count: usize,
    /// The manifest URL.
    pub manifest_url: String,
}

/// `None` if `sql` is not a COPY; `Some(Err)` for a COPY the stand-in cannot run.
pub(crate) fn parse_copy(sql: &str) -> Option<Result<CopyParquet, String>> {
    let tokens: Vec<Tok> = tokenize(sql)
        .into_iter()
        .filter(|t| !matches!(t, Tok::Space(_)))
        .collect();
    if !tokens.first().is_some_and(|t| t.is_word("COPY")) {
        return None;
    }
    Some(parse_copy_tokens(&tokens))
}

fn unquote(literal: &str) -> String {
    literal.trim_matches('\'').replace("''", "'")
}

fn parse_copy_tokens(tokens: &[Tok]) -> Result<CopyParquet, String> {
    let unsupported = |what: &str| {
        format!("ERROR: the Redshift Data API stand-in runs only `COPY t FROM 's3://…manifest' IAM_ROLE '…' FORMAT AS PARQUET MANIFEST`: {what}")
    };
    let mut i = 1;
    let mut target = String::new();
    while let Some(t @ (Tok::Word(_) | Tok::Quoted(_) | Tok::Punct('.'))) = tokens.get(i) {
        if t.is_word("FROM") {
            break;
        }
        target.push_str(&t.text());
        i += 1;
    }
    if target.is_empty() {
        return Err(unsupported("no target table"));
    }
    let mut columns = None;
    let mut column_count = 0;
    if tokens.get(i) == Some(&Tok::Punct('(')) {
        let end = skip_group(tokens, i);
        column_count = tokens[i..end]
            .iter()
            .filter(|t| matches!(t, Tok::Word(_) | Tok::Quoted(_)))
            .count();
        columns = Some(join(&tokens[i..end]).replace(",", ", "));
        i = end;
    }
    if !tokens.get(i).is_some_and(|t| t.is_word("FROM")) {
        return Err(unsupported("expected FROM"));
    }
    let Some(Tok::Str(url)) = tokens.get(i + 1) else {
        return Err(unsupported("expected FROM 's3://…'"));
    };
    let manifest_url = unquote(url);
    i += 2;
    let (mut parquet, mut manifest) = (false, false);
    while let Some(t) = tokens.get(i) {
        if t.is_word("IAM_ROLE") || t.is_word("CREDENTIALS") {
            if !matches!(tokens.get(i + 1), Some(Tok::Str(_))) {
                return Err(unsupported("IAM_ROLE needs a quoted ARN"));
            }
            i += 2;
        } else if t.is_word("FORMAT") {
            let j = if tokens.get(i + 1).is_some_and(|n| n.is_word("AS")) {
                i + 2
            } else {
                i + 1
            };
            if !tokens.get(j).is_some_and(|n| n.is_word("PARQUET")) {
                return Err(unsupported("only FORMAT AS PARQUET is supported"));
            }
            parquet = true;
            i = j + 1;
        } else if t.is_word("MANIFEST") {
            manifest = true;
            i += 1;
        } else if *t == Tok::Punct(';') {
            i += 1;
        } else {
            return Err(unsupported(&format!("unsupported option `{}`", t.text())));
        }
    }
    if !parquet {
        return Err(unsupported("FORMAT AS PARQUET is missing"));
    }
    if !manifest {
        return Err(unsupported("MANIFEST is missing"));
    }
    Ok(CopyParquet {
        target,
        columns,
        column_count,
        manifest_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redshift_attributes_are_stripped_outside_quotes() {
        let sql =
            "CREATE TABLE t (a INT ENCODE az64, \"sortkey\" VARCHAR(3) DEFAULT 'DISTSTYLE ALL')\n\
                   DISTSTYLE KEY DISTKEY (a) COMPOUND SORTKEY (a, \"sortkey\")";
        assert_eq!(
            strip_redshift_attributes(sql),
            "CREATE TABLE t (a INT , \"sortkey\" VARCHAR(3) DEFAULT 'DISTSTYLE ALL')\n  "
        );
        assert_eq!(
            strip_redshift_attributes("CREATE TABLE t (a INT) DISTSTYLE AUTO SORTKEY AUTO;"),
            "CREATE TABLE t (a INT)  ;"
        );
    }

    #[test]
    fn parameters_become_literals_and_casts_survive() {
        let params = vec![("name".to_string(), "it's".to_string())];
        assert_eq!(
            bind_parameters("SELECT x::text, ':name' FROM t WHERE a = :name", &params).ok(),
            Some("SELECT x::text, ':name' FROM t WHERE a = 'it''s'".into())
        );
        assert!(bind_parameters("SELECT :missing", &params).is_err());
    }

    #[test]
    fn copy_parquet_manifest_is_parsed_and_others_refused() {
        let copy = parse_copy("COPY \"s\".\"t\" FROM 's3://b/m.manifest' IAM_ROLE 'arn:aws:iam::1:role/R' FORMAT AS PARQUET MANIFEST;");
        assert_eq!(
            copy,
            Some(Ok(CopyParquet {
                target: "\"s\".\"t\"".into(),
                columns: None,
                column_count: 0,
                manifest_url: "s3://b/m.manifest".into()
            }))
        );
        assert!(matches!(
            parse_copy("COPY t FROM 's3://b/p/' IAM_ROLE 'x' FORMAT AS PARQUET"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_copy("COPY t FROM 's3://b/m' IAM_ROLE 'x' CSV MANIFEST"),
            Some(Err(_))
        ));
        assert_eq!(parse_copy("SELECT 1"), None);
    }
}
