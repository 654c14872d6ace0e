//! Generator throughput, single thread.
//!
//! ```text
//! cargo run --release -p etl-generate --example gen_speed -- [events] [out_dir]
//! ```
//! Times `Generator::next_record` over `events` records (default 1,000,000), then `write_ndjson`
//! to `io::sink()` (or to `out_dir/{app,call}_events.ndjson` when given), and prints events/s
//! and MB/s, the peak resident memory and the statistics as JSON.

use std::time::Instant;

use etl_generate::{write_ndjson, Generator, GeneratorConfig};

/// CPU seconds (user + system) this process has used so far, from /proc (Linux; 0 elsewhere).
/// Reported next to wall time because a shared 2-core build machine skews wall-clock numbers.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let out_dir = args.next();
    let cfg = GeneratorConfig {
        events,
        ..GeneratorConfig::default()
    };

    let mut g = Generator::new(cfg.clone())?;
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let mut bytes = 0u64;
    while let Some((_, _, line)) = g.next_record() {
        bytes += line.len() as u64 + 1;
    }
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!(
        "next_record:  {events} events, {:.1} MB in {secs:.3} s = {:.2} M events/s, {:.0} MB/s, avg line {:.0} B \
         (CPU {cpu:.2} s = {:.2} M events/CPU-s)",
        bytes as f64 / 1e6,
        events as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6,
        bytes as f64 / events as f64,
        events as f64 / cpu.max(0.01) / 1e6
    );

    let (t, cpu) = (Instant::now(), cpu_seconds());
    let stats = match &out_dir {
        Some(dir) => {
            let mut app = std::fs::File::create(format!("{dir}/app_events.ndjson"))?;
            let mut call = std::fs::File::create(format!("{dir}/call_events.ndjson"))?;
            write_ndjson(cfg, &mut app, &mut call)?
        }
        None => write_ndjson(cfg, &mut std::io::sink(), &mut std::io::sink())?,
    };
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let total = stats.total();
    println!(
        "write_ndjson: {} events, {:.1} MB in {secs:.3} s = {:.2} M events/s, {:.0} MB/s, CPU {cpu:.2} s ({})",
        stats.events(),
        total.bytes as f64 / 1e6,
        stats.events() as f64 / secs / 1e6,
        total.bytes as f64 / secs / 1e6,
        out_dir.as_deref().map_or("to io::sink".to_string(), |d| format!("to files in {d}"))
    );
    // Peak resident memory (Linux), to show generation streams in bounded memory.
    if let Some(hwm) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
    {
        println!("peak RSS {}", hwm.trim_start_matches("VmHWM:").trim());
    }
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(())
}
