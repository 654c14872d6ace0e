//! Decoder throughput on realistic in-memory events, one core.
//!
//! `cargo run --release -p etl-decode --example decode_bench [-- <records per stream> <batch size>]`
//!
//! Builds ~200k events per stream with a small deterministic generator (about 400 bytes each,
//! ~10% with unknown keys, some escaped strings and offset timestamps, ~1% invalid), decodes them
//! in Kinesis-sized batches several times and prints the best and median rates. For context it
//! also times `serde_json::from_slice::<serde_json::Value>` over the same bytes.

use etl_decode::{DecodeOptions, Decoder};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }
}

const BASE_MS: i64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z

fn timestamp(rng: &mut Rng) -> String {
    let ms = BASE_MS + rng.below(86_400_000) as i64;
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    match rng.below(10) {
        0 => ms.to_string(),
        1 => format!("\"2026-11-01T{:02}:{m:02}:{s:02}.{milli:03}+00:00\"", h),
        2 => format!("\"2026-11-01T{h:02}:{m:02}:{s:02}Z\""),
        _ => format!("\"2026-11-01T{h:02}:{m:02}:{s:02}.{milli:03}Z\""),
    }
}

fn app_event(rng: &mut Rng, i: usize) -> String {
    let types = [
        "page_view",
        "login",
        "logout",
        "message_sent",
        "message_failed",
        "button_click",
        "signup",
        "app_open",
        "app_background",
        "purchase",
    ];
    let screens = [
        "inbox",
        "conversation_detail",
        "settings",
        "contacts",
        "billing",
        "onboarding_step_2",
    ];
    let platform = rng.pick(&["ios", "android", "web"]);
    let mut props = format!(
        "{{\"screen\":\"{}\",\"duration_ms\":{},\"network\":\"{}\",\"ab_bucket\":\"{}\",\"referrer\":\"{}\",\"items\":[{},{},{}],\"battery\":{:.2}}}",
        rng.pick(&screens),
        rng.below(60_000),
        rng.pick(&["wifi", "cellular", "offline"]),
        rng.pick(&["control", "variant_a", "variant_b"]),
        rng.pick(&["push_notification", "deep_link", "organic", "email_campaign_2026_q4"]),
        rng.below(1000),
        rng.below(1000),
        rng.below(1000),
        rng.below(10_000) as f64 / 100.0
    );
    if rng.below(20) == 0 {
        props = props.replace("\"screen\":\"", "\"screen\":\"caf\\u00e9 \\\"menu\\\" ");
    }
    let mut rec = format!(
        "{{\"event_id\":\"{}\",\"event_type\":\"{}\",\"occurred_at\":{},\"user_id\":\"usr_{}\",\"account_id\":\"acc_{}\",\"session_id\":\"{}\",\"platform\":\"{platform}\",\"app_version\":\"{}.{}.{}\",\"country\":\"{}\",\"properties\":{props}",
        rng.uuid(),
        rng.pick(&types),
        timestamp(rng),
        rng.hex(20),
        rng.hex(12),
        rng.uuid(),
        rng.below(10),
        rng.below(30),
        rng.below(100),
        rng.pick(&["US", "GB", "DE", "BR", "IN", "JP", "FR"]),
    );
    if rng.below(10) == 0 {
        rec.push_str(&format!(
            ",\"sdk_build\":{},\"device_model\":\"Pixel 9 Pro\"",
            rng.below(100_000)
        ));
    }
    if i % 100 == 99 {
        rec.push_str(",\"event_id\":\"dup\""); // ~1% rejects
    }
    rec.push('}');
    rec
}

fn call_event(rng: &mut Rng, i: usize) -> String {
    let types = [
        "call_started",
        "call_ringing",
        "call_answered",
        "call_ended",
        "call_failed",
        "quality_sample",
    ];
    let event_type = rng.pick(&types);
    let phone = |rng: &mut Rng| {
        format!(
            "+1{}{}",
            200 + rng.below(800),
            1_000_000 + rng.below(9_000_000)
        )
    };
    let mut rec = format!(
        "{{\"event_id\":\"{}\",\"call_id\":\"{}\",\"event_type\":\"{event_type}\",\"occurred_at\":{},\"account_id\":\"acc_{}\",\"caller\":\"{}\",\"callee\":\"{}\",\"direction\":\"{}\",\"channel\":\"{}\",\"region\":\"{}\",\"codec\":\"{}\"",
        rng.uuid(),
        rng.uuid(),
        timestamp(rng),
        rng.hex(12),
        phone(rng),
        phone(rng),
        rng.pick(&["inbound", "outbound"]),
        rng.pick(&["voice", "video"]),
        rng.pick(&["us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2"]),
        rng.pick(&["opus", "PCMU", "G722", "VP8"]),
    );
    if matches!(event_type, "call_ended" | "call_failed") {
        rec.push_str(&format!(
            ",\"duration_ms\":{},\"hangup_cause\":\"{}\"",
            rng.below(3_600_000),
            rng.pick(&["normal_clearing", "busy", "no_answer", "network_error"])
        ));
    }
    if matches!(event_type, "call_ended" | "quality_sample") {
        rec.push_str(&format!(
            ",\"quality\":{{\"mos\":{:.2},\"jitter_ms\":{:.1},\"packet_loss_pct\":{:.3},\"rtt_ms\":{}}}",
            1.0 + rng.below(400) as f64 / 100.0,
            rng.below(1000) as f64 / 10.0,
            rng.below(5000) as f64 / 1000.0,
            rng.below(400)
        ));
    }
    if rng.below(10) == 0 {
        rec.push_str(&format!(
            ",\"sip_call_id\":\"{}@sip.example.net\",\"trunk\":{{\"id\":{},\"carrier\":\"acme\"}}",
            rng.hex(24),
            rng.below(50)
        ));
    }
    if i % 100 == 99 {
        rec.push_str(",\"duration_ms\":\"oops\""); // ~1% rejects
    }
    rec.push('}');
    rec
}

/// CPU time of the calling thread: the "per core" clock, immune to other processes on the box.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(stream: &str, records: &[String], batch: usize) {
    let schemas = etl_schema::embedded().expect("embedded schemas");
    let schema = Arc::new(
        schemas
            .into_iter()
            .find(|s| s.stream == stream)
            .expect("stream"),
    );
    let bytes: usize = records.iter().map(String::len).sum();
    let n = records.len();
    let mut decoder = Decoder::new(schema, DecodeOptions::default());
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let (mut rows, mut rejects) = (0, 0);
    for _ in 0..7 {
        let start = Instant::now();
        let cpu_start = thread_cpu();
        rows = 0;
        rejects = 0;
        for chunk in records.chunks(batch) {
            let out = decoder
                .decode(chunk.iter().map(|r| r.as_bytes()))
                .expect("decode");
            rows += out.batch.num_rows();
            rejects += out.rejects.len();
            std::hint::black_box(out);
        }
        times.push(start.elapsed());
        cpu_times.push(thread_cpu().saturating_sub(cpu_start));
    }
    let cpu_best = *cpu_times.iter().min().unwrap_or(&Duration::ZERO);
    let cpu_med = median(cpu_times);
    let best = *times.iter().min().unwrap_or(&Duration::ZERO);
    let med = median(times);
    let rate = |d: Duration| {
        (
            n as f64 / d.as_secs_f64(),
            bytes as f64 / d.as_secs_f64() / 1e6,
        )
    };
    let (eb, mb) = rate(best);
    let (em, mm) = rate(med);
    let (cb, cbm) = rate(cpu_best);
    let (cm, cmm) = rate(cpu_med);
    println!(
        "{stream:<12} {n} records, avg {:.0} B, {rows} rows, {rejects} rejects",
        bytes as f64 / n as f64
    );
    println!("{:<12} etl-decode per core (thread CPU time): best {:.2} M events/s {:.0} MB/s, median {:.2} M events/s {:.0} MB/s", "", cb / 1e6, cbm, cm / 1e6, cmm);
    println!("{:<12} etl-decode wall clock:                 best {:.2} M events/s {:.0} MB/s, median {:.2} M events/s {:.0} MB/s", "", eb / 1e6, mb, em / 1e6, mm);
    let start = thread_cpu();
    for r in records {
        let v: Result<serde_json::Value, _> = serde_json::from_slice(r.as_bytes());
        std::hint::black_box(v.ok());
    }
    let (es, ms) = rate(thread_cpu().saturating_sub(start));
    println!(
        "{:<12} (reference) serde_json::Value parse only: {:.2} M events/s {:.0} MB/s",
        "",
        es / 1e6,
        ms
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8192);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let app: Vec<String> = (0..n).map(|i| app_event(&mut rng, i)).collect();
    let call: Vec<String> = (0..n).map(|i| call_event(&mut rng, i)).collect();
    println!("batch size {batch}, single thread");
    bench("app_events", &app, batch);
    bench("call_events", &call, batch);
}
