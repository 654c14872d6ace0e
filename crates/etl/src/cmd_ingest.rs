//! `etl ingest`: files (or stdin) of one or more streams through the pipeline, all streams at
//! once in this process (they share the pipeline's `parallelism`, start-up and warm-up).
//!
//! Forms:
//! - `etl ingest --stream app_events A.ndjson B.ndjson` (one stream, its files);
//! - `etl ingest --stream app_events A.ndjson --stream call_events C.ndjson` (several streams);
//! - `etl ingest --stream app_events --json A.ndjson` (files after the options, one stream only).

use crate::setup::Setup;
use anyhow::{bail, Result};
use clap::{Arg, ArgAction, ArgMatches};
use etl_pipeline::StreamSummary;

/// The arguments of `etl ingest`, parsed by hand: clap's derive cannot keep the files of each
/// `--stream` occurrence apart.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestArgs {
    /// Each stream with its input files, in the order given (a stream named twice gets the
    /// files of both occurrences, read one after another).
    pub streams: Vec<(String, Vec<String>)>,
    /// Print the summary as JSON.
    pub json: bool,
}

impl clap::FromArgMatches for IngestArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let invalid = |message: String| {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, message + "\n")
        };
        let mut streams: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(occurrences) = matches.get_occurrences::<String>("stream") {
            for occurrence in occurrences {
                let mut values = occurrence.cloned();
                let Some(stream) = values.next() else {
                    continue;
                };
                let files: Vec<String> = values.collect();
                match streams.iter_mut().find(|(s, _)| *s == stream) {
                    Some((_, existing)) => existing.extend(files),
                    None => streams.push((stream, files)),
                }
            }
        }
        let loose: Vec<String> = matches
            .get_many::<String>("files")
            .map(|v| v.cloned().collect())
            .unwrap_or_default();
        if !loose.is_empty() {
            match streams.as_mut_slice() {
                [(_, files)] => files.extend(loose),
                _ => {
                    return Err(invalid(format!(
                        "input files after the options ({}) belong to one --stream, but {} streams were given; put each stream's files right after its name: --stream app_events A.ndjson --stream call_events C.ndjson",
                        loose.join(" "),
                        streams.len()
                    )))
                }
            }
        }
        if streams.is_empty() {
            return Err(invalid(
                "no --stream given: etl ingest --stream <STREAM> <FILE>...".into(),
            ));
        }
        if let Some((stream, _)) = streams.iter().find(|(_, files)| files.is_empty()) {
            return Err(invalid(format!(
                "--stream {stream} has no input file; give its files after the name (`-` reads stdin): --stream {stream} events.ndjson"
            )));
        }
        let stdin = streams
            .iter()
            .flat_map(|(_, files)| files)
            .filter(|f| *f == "-")
            .count();
        if stdin > 1 {
            return Err(invalid(
                "stdin (`-`) can be read only once per run; give it to one stream".into(),
            ));
        }
        Ok(IngestArgs {
            streams,
            json: matches.get_flag("json"),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for IngestArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.override_usage(
            "etl ingest --stream <STREAM> <FILE>... [--stream <STREAM> <FILE>...]... [--json]\n       \
             etl ingest --stream <STREAM> [OPTIONS] <FILE>...",
        )
        .arg(
            Arg::new("stream")
                .long("stream")
                .required(true)
                .num_args(1..)
                .action(ArgAction::Append)
                .value_names(["STREAM", "FILE"])
                .help("A stream (`app_events`, `call_events`, …) and its input files (`-` reads stdin); repeat for more streams, which are ingested at the same time"),
        )
        .arg(
            Arg::new("files")
                .num_args(0..)
                .value_name("FILE")
                .help("Input files of the single --stream, when given after the options"),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("Print the summary as JSON (one stream: its summary; several: `streams` and the totals)"),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Runs `etl ingest`: every stream at once, each stream's files one after another.
pub async fn run(setup: &Setup, args: IngestArgs) -> Result<()> {
    let pipeline = setup.pipeline()?;
    pipeline.sync_catalog().await?;
    let runs = args
        .streams
        .iter()
        .map(|(stream, files)| crate::commands::ingest_files(&pipeline, stream, files, None));
    // All streams run to their end even when one fails, so every error is reported.
    let results = futures::future::join_all(runs).await;
    let mut summaries = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(summary) => summaries.push(summary),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    match errors.len() {
        0 => {}
        1 => bail!("{}", errors[0]),
        _ => bail!(
            "{} streams failed:\n  {}",
            errors.len(),
            errors.join("\n  ")
        ),
    }
    if args.json {
        let json = match summaries.as_slice() {
            [one] => serde_json::to_value(one)?,
            several => totals_json(several)?,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        for summary in &summaries {
            println!("{summary}");
        }
        println!("lake: {}", pipeline.lake().location());
    }
    Ok(())
}

/// `{"streams": [...], "read": …, …}`: each stream's summary and the sums of the counts.
fn totals_json(summaries: &[StreamSummary]) -> Result<serde_json::Value> {
    let sum = |f: fn(&StreamSummary) -> u64| summaries.iter().map(f).sum::<u64>();
    Ok(serde_json::json!({
        "streams": summaries,
        "read": sum(|s| s.read),
        "bytes_read": sum(|s| s.bytes_read),
        "written": sum(|s| s.written),
        "duplicates": sum(|s| s.duplicates),
        "filtered": sum(|s| s.filtered),
        "dead_lettered": sum(|s| s.dead_lettered),
        "batches": sum(|s| s.batches),
        "files": sum(|s| s.files),
        "parquet_bytes": sum(|s| s.parquet_bytes),
    }))
}

#[cfg(test)]
mod tests {
    use super::IngestArgs;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: IngestArgs,
    }

    fn parse(argv: &[&str]) -> Result<IngestArgs, String> {
        Cmd::try_parse_from(std::iter::once("ingest").chain(argv.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    fn streams(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        pairs
            .iter()
            .map(|(s, f)| (s.to_string(), f.iter().map(|f| f.to_string()).collect()))
            .collect()
    }

    #[test]
    fn ingest_args_keep_each_streams_files_apart() -> Result<(), String> {
        let one = parse(&["--stream", "app_events", "a.ndjson", "b.ndjson"])?;
        assert_eq!(
            one.streams,
            streams(&[("app_events", &["a.ndjson", "b.ndjson"])])
        );
        let after = parse(&["--stream", "app_events", "--json", "a.ndjson"])?;
        assert_eq!(after.streams, streams(&[("app_events", &["a.ndjson"])]));
        assert!(after.json);
        let two = parse(&[
            "--stream",
            "app_events",
            "a.ndjson",
            "--stream",
            "call_events",
            "-",
            "--stream",
            "app_events",
            "c.ndjson",
        ])?;
        assert_eq!(
            two.streams,
            streams(&[
                ("app_events", &["a.ndjson", "c.ndjson"]),
                ("call_events", &["-"])
            ])
        );
        Ok(())
    }

    #[test]
    fn ingest_args_refuse_ambiguous_or_missing_files() {
        let loose = parse(&["--stream", "a", "x", "--stream", "b", "y", "--json", "z"]);
        assert!(
            loose
                .as_ref()
                .is_err_and(|e| e.contains("belong to one --stream")),
            "{loose:?}"
        );
        let empty = parse(&["--stream", "a", "x", "--stream", "b"]);
        assert!(
            empty
                .as_ref()
                .is_err_and(|e| e.contains("--stream b has no input file")),
            "{empty:?}"
        );
        let stdin = parse(&["--stream", "a", "-", "--stream", "b", "-"]);
        assert!(
            stdin.as_ref().is_err_and(|e| e.contains("only once")),
            "{stdin:?}"
        );
        assert!(parse(&["a.ndjson"]).is_err(), "--stream is required");
    }
}
