//! `call_events`: interleaved call lifecycles.
//!
//! A call goes `call_started` -> `call_ringing` -> `call_answered` -> `quality_sample`* ->
//! `call_ended`, or fails (`call_failed` with busy / no_answer / rejected / network_error) after
//! ringing, or rarely straight after starting (network_error). About 20% of calls fail. Each step
//! is due some realistic time after the previous one; at most [`MAX_ACTIVE_CALLS`] are in flight.

use crate::fmt::{
    below, chance, pick, pick_uniform, push_fixed, push_i64, range_f64, range_i64, unit, Fault,
    JsonObj, Rng, TsStyle, TsWriter,
};
use crate::ids::{push_event_id, push_sid, skewed_index, Keys, Phone};

/// Calls in flight at most.
pub(crate) const MAX_ACTIVE_CALLS: usize = 4096;

/// Extra keys not in the schema (they land in the `extras` column).
pub(crate) const EXTRAS: [&[u8]; 4] = [
    b"\"experiment\":\"b\"",
    b"\"experiment\":\"a\"",
    b"\"sdk_build\":\"2026.10.3\"",
    b"\"trace_sampled\":true",
];
/// Share of valid records that carry one extra key.
pub(crate) const EXTRA_RATE: f64 = 0.03;

const VOICE_CODECS: [(&str, u32); 4] = [("opus", 60), ("PCMU", 25), ("PCMA", 10), ("G722", 5)];
const VIDEO_CODECS: [(&str, u32); 3] = [("VP8", 50), ("H264", 35), ("VP9", 15)];
const FAIL_CAUSES: [(&str, u32); 4] = [
    ("busy", 35),
    ("no_answer", 40),
    ("rejected", 20),
    ("network_error", 5),
];

#[derive(Debug, Clone, Copy)]
struct Quality {
    mos: f64,
    jitter_ms: f64,
    loss_pct: f64,
    rtt_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing,
    Answer,
    Sample,
    End,
    Fail(&'static str),
}

#[derive(Debug, Clone)]
struct Call {
    no: u64,
    account: u32,
    caller: Phone,
    callee: Phone,
    direction: &'static str,
    channel: &'static str,
    region: &'static str,
    codec: &'static str,
    base: Quality,
    poor: bool,
    phase: Phase,
    answered_at: i64,
    talk_ms: i64,
    samples_left: u32,
    sample_every: i64,
}

/// What one record says, besides the call's fixed fields.
struct Ev {
    event_type: &'static str,
    at: i64,
    style: TsStyle,
    codec: bool,
    duration_ms: Option<i64>,
    hangup: Option<&'static str>,
    quality: Option<Quality>,
}

/// What a written valid record was, for the statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub(crate) event_type: &'static str,
    pub(crate) occurred_ms: i64,
    pub(crate) duration_ms: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct CallGen {
    sched: crate::sched::Scheduler<Call>,
    keys: Keys,
    accounts: u32,
    next_call: u64,
    next_event: u64,
    ts: TsWriter,
}

impl CallGen {
    pub(crate) fn new(keys: Keys, accounts: u32) -> Self {
        CallGen {
            sched: crate::sched::Scheduler::new(MAX_ACTIVE_CALLS),
            keys,
            accounts,
            next_call: 0,
            next_event: 0,
            ts: TsWriter::new(),
        }
    }

    fn new_call(&mut self, r: &mut Rng) -> Call {
        let no = self.next_call;
        self.next_call += 1;
        let (caller, region) = Phone::random(r);
        let (callee, _) = Phone::random(r);
        let video = chance(r, 0.2);
        let poor = chance(r, 0.15);
        let base = if poor {
            Quality {
                mos: range_f64(r, 2.0, 3.45),
                jitter_ms: range_f64(r, 25.0, 90.0),
                loss_pct: range_f64(r, 2.0, 12.0),
                rtt_ms: range_f64(r, 150.0, 450.0),
            }
        } else {
            Quality {
                mos: range_f64(r, 3.65, 4.4),
                jitter_ms: range_f64(r, 2.0, 20.0),
                loss_pct: range_f64(r, 0.0, 1.2),
                rtt_ms: range_f64(r, 20.0, 160.0),
            }
        };
        Call {
            no,
            account: skewed_index(r, self.accounts),
            caller,
            callee,
            direction: if chance(r, 0.55) {
                "inbound"
            } else {
                "outbound"
            },
            channel: if video { "video" } else { "voice" },
            region,
            codec: if video {
                pick(r, &VIDEO_CODECS)
            } else {
                pick(r, &VOICE_CODECS)
            },
            base,
            poor,
            phase: Phase::Ringing,
            answered_at: 0,
            talk_ms: 0,
            samples_left: 0,
            sample_every: 0,
        }
    }

    /// Writes the next valid record at event time `now` (moved back by `late_ms`) into `out`.
    pub(crate) fn next_valid(
        &mut self,
        r: &mut Rng,
        now: i64,
        late_ms: i64,
        out: &mut Vec<u8>,
    ) -> Written {
        let style = TsStyle::pick(r);
        let at = now - late_ms;
        let Some(mut call) = self.sched.take(now) else {
            // Start a new call.
            let mut call = self.new_call(r);
            let w = self.write(
                r,
                out,
                &call,
                Ev::bare("call_started", at, style),
                Fault::None,
            );
            if chance(r, 0.03) {
                call.phase = Phase::Fail("network_error");
                self.sched.insert(call, now + range_i64(r, 200, 3_000));
            } else {
                self.sched.insert(call, now + range_i64(r, 100, 1_500));
            }
            return w;
        };
        let w;
        match call.phase {
            Phase::Ringing => {
                w = self.write(
                    r,
                    out,
                    &call,
                    Ev::bare("call_ringing", at, style),
                    Fault::None,
                );
                if chance(r, 0.17) {
                    let cause = pick(r, &FAIL_CAUSES);
                    let wait = match cause {
                        "busy" => range_i64(r, 300, 3_000),
                        "no_answer" => range_i64(r, 20_000, 45_000),
                        "rejected" => range_i64(r, 2_000, 15_000),
                        _ => range_i64(r, 500, 10_000),
                    };
                    call.phase = Phase::Fail(cause);
                    self.sched.insert(call, now + wait);
                } else {
                    call.phase = Phase::Answer;
                    self.sched.insert(call, now + range_i64(r, 2_000, 25_000));
                }
            }
            Phase::Answer => {
                let mut ev = Ev::bare("call_answered", at, style);
                ev.codec = true;
                w = self.write(r, out, &call, ev, Fault::None);
                call.answered_at = now;
                // Talk time log-uniform between 8 s and 15 min (mean about 3 min).
                call.talk_ms = (8_000.0 * (unit(r) * (900_000f64 / 8_000.0).ln()).exp()) as i64;
                call.sample_every = (call.talk_ms / 30).max(10_000).min(call.talk_ms / 2).max(1);
                call.samples_left = (call.talk_ms / call.sample_every).clamp(1, 30) as u32;
                call.phase = Phase::Sample;
                let due = now + call.sample_every;
                self.sched.insert(call, due);
            }
            Phase::Sample => {
                let q = sample_quality(r, &call);
                let mut ev = Ev::bare("quality_sample", at, style);
                ev.codec = true;
                ev.quality = Some(q);
                w = self.write(r, out, &call, ev, Fault::None);
                call.samples_left = call.samples_left.saturating_sub(1);
                let due = if call.samples_left > 0 {
                    now + call.sample_every
                } else {
                    call.phase = Phase::End;
                    (call.answered_at + call.talk_ms).max(now + 500)
                };
                self.sched.insert(call, due);
            }
            Phase::End => {
                let hangup = if chance(r, if call.poor { 0.25 } else { 0.01 }) {
                    "media_timeout"
                } else if chance(r, 0.05) {
                    "normal_unspecified"
                } else {
                    "normal_clearing"
                };
                let mut ev = Ev::bare("call_ended", at, style);
                ev.codec = true;
                ev.duration_ms = Some(now - call.answered_at);
                ev.hangup = Some(hangup);
                ev.quality = Some(call.base);
                w = self.write(r, out, &call, ev, Fault::None);
            }
            Phase::Fail(cause) => {
                let mut ev = Ev::bare("call_failed", at, style);
                ev.hangup = Some(cause);
                w = self.write(r, out, &call, ev, Fault::None);
            }
        }
        w
    }

    /// Writes a record of a fresh call that no valid record refers to, with `fault` applied.
    pub(crate) fn detached(&mut self, r: &mut Rng, now: i64, fault: Fault<'_>, out: &mut Vec<u8>) {
        let call = self.new_call(r);
        let style = TsStyle::pick(r);
        let ev = match below(r, 3) {
            0 => Ev::bare("call_started", now, style),
            1 => Ev {
                codec: true,
                quality: Some(sample_quality(r, &call)),
                ..Ev::bare("quality_sample", now, style)
            },
            _ => Ev {
                codec: true,
                duration_ms: Some(range_i64(r, 8_000, 900_000)),
                hangup: Some("normal_clearing"),
                quality: Some(call.base),
                ..Ev::bare("call_ended", now, style)
            },
        };
        self.write(r, out, &call, ev, fault);
    }

    fn write(
        &mut self,
        r: &mut Rng,
        out: &mut Vec<u8>,
        call: &Call,
        ev: Ev,
        fault: Fault<'_>,
    ) -> Written {
        let event_no = self.next_event;
        self.next_event += 1;
        let keys = self.keys;
        let omit_region = below(r, 100) == 0;
        let omit_codec = below(r, 100) == 0;
        let extra = if chance(r, EXTRA_RATE) {
            Some(pick_uniform(r, &EXTRAS))
        } else {
            None
        };
        let mut occurred_ms = ev.at;
        let ts = &mut self.ts;
        let mut o = JsonObj::begin(out, fault);
        o.field("event_id", |b| {
            b.push(b'"');
            push_event_id(b, event_no, keys.call_event);
            b.push(b'"');
        });
        o.field("call_id", |b| {
            b.push(b'"');
            push_sid(b, b"CA", call.no, keys.call);
            b.push(b'"');
        });
        o.str("event_type", ev.event_type.as_bytes());
        o.field("occurred_at", |b| occurred_ms = ts.push(b, ev.at, ev.style));
        o.field("account_id", |b| {
            b.push(b'"');
            push_sid(b, b"AC", u64::from(call.account), keys.account);
            b.push(b'"');
        });
        o.str("caller", call.caller.as_bytes());
        o.str("callee", call.callee.as_bytes());
        o.str("direction", call.direction.as_bytes());
        o.str("channel", call.channel.as_bytes());
        if !omit_region {
            o.str("region", call.region.as_bytes());
        }
        if ev.codec && !omit_codec {
            o.str("codec", call.codec.as_bytes());
        }
        if let Some(d) = ev.duration_ms {
            o.field("duration_ms", |b| push_i64(b, d));
        }
        if let Some(h) = ev.hangup {
            o.str("hangup_cause", h.as_bytes());
        }
        if let Some(q) = ev.quality {
            o.field("quality", |b| {
                b.extend_from_slice(b"{\"mos\":");
                push_fixed(b, q.mos, 2);
                b.extend_from_slice(b",\"jitter_ms\":");
                push_fixed(b, q.jitter_ms, 1);
                b.extend_from_slice(b",\"packet_loss_pct\":");
                push_fixed(b, q.loss_pct, 2);
                b.extend_from_slice(b",\"rtt_ms\":");
                push_fixed(b, q.rtt_ms, 1);
                b.push(b'}');
            });
        }
        if let Some(x) = extra {
            o.raw_member(x);
        }
        o.finish();
        Written {
            event_type: ev.event_type,
            occurred_ms,
            duration_ms: ev.duration_ms,
        }
    }
}

impl Ev {
    fn bare(event_type: &'static str, at: i64, style: TsStyle) -> Ev {
        Ev {
            event_type,
            at,
            style,
            codec: false,
            duration_ms: None,
            hangup: None,
            quality: None,
        }
    }
}

/// One sample around the call's base quality; MOS stays within 1.0 ..= 4.5.
fn sample_quality(r: &mut Rng, call: &Call) -> Quality {
    let b = call.base;
    // A short glitch now and then, even on good calls.
    let glitch = chance(r, 0.03);
    let dip = if glitch { range_f64(r, 0.6, 1.5) } else { 0.0 };
    Quality {
        mos: (b.mos + range_f64(r, -0.15, 0.15) - dip).clamp(1.0, 4.5),
        jitter_ms: (b.jitter_ms * range_f64(r, 0.7, 1.3) + dip * 30.0).max(0.0),
        loss_pct: (b.loss_pct * range_f64(r, 0.5, 1.5) + dip * 3.0).clamp(0.0, 100.0),
        rtt_ms: (b.rtt_ms * range_f64(r, 0.9, 1.15)).max(1.0),
    }
}
