//! `app_events`: interleaved user sessions.
//!
//! A session opens with `app_open`, sometimes `signup` and/or `login`, then page views, button
//! clicks, messages (about 3% `message_failed`) and rare purchases, and closes with `logout` or
//! `app_background`. A user's platform, country, app version and account are fixed per user.

use crate::calls::{Written, EXTRAS, EXTRA_RATE};
use crate::fmt::{
    below, chance, mix64, pick, pick_uniform, push_hex, push_u64, range_i64, unit, Fault, JsonObj,
    Rng, TsStyle, TsWriter,
};
use crate::ids::{push_event_id, push_short_id, push_sid, Keys};

/// Sessions in flight at most.
pub(crate) const MAX_ACTIVE_SESSIONS: usize = 4096;

const COUNTRIES: [(&str, u32); 16] = [
    ("US", 30),
    ("IN", 12),
    ("GB", 8),
    ("DE", 7),
    ("BR", 7),
    ("FR", 5),
    ("MX", 5),
    ("JP", 4),
    ("AU", 4),
    ("CA", 4),
    ("ES", 3),
    ("NG", 3),
    ("ID", 3),
    ("PH", 3),
    ("NL", 1),
    ("SE", 1),
];
const IOS_VERSIONS: [&str; 4] = ["6.4.1", "6.4.0", "6.3.2", "6.2.0"];
const ANDROID_VERSIONS: [&str; 4] = ["6.4.2", "6.4.1", "6.3.0", "5.9.8"];
const WEB_VERSIONS: [&str; 4] = ["2026.10.28", "2026.10.14", "2026.09.30", "2026.09.02"];
const PAGES: [&str; 10] = [
    "/inbox",
    "/home",
    "/contacts",
    "/calls",
    "/settings",
    "/billing",
    "/thread",
    "/search",
    "/profile",
    "/dialer",
];
const BUTTONS: [(&str, &str); 8] = [
    ("start_call", "dialer"),
    ("send", "thread"),
    ("attach", "thread"),
    ("mute", "call"),
    ("video_on", "call"),
    ("new_message", "inbox"),
    ("save", "settings"),
    ("upgrade", "billing"),
];
const MSG_CHANNELS: [(&str, u32); 4] = [("sms", 55), ("chat", 25), ("whatsapp", 15), ("mms", 5)];
const MSG_ERRORS: [&str; 4] = [
    "carrier_rejected",
    "rate_limited",
    "invalid_number",
    "timeout",
];
const SKUS: [(&str, u32); 3] = [
    ("plan_pro_monthly", 1999),
    ("plan_team_monthly", 4999),
    ("credits_100", 1000),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Signup,
    Login,
    Activity,
    End,
}

#[derive(Debug, Clone)]
struct Session {
    no: u64,
    user: u64,
    account: u32,
    platform: &'static str,
    version: &'static str,
    country: &'static str,
    phase: Phase,
    left: u32,
    opened_at: i64,
}

#[derive(Debug)]
pub(crate) struct AppGen {
    sched: crate::sched::Scheduler<Session>,
    keys: Keys,
    accounts: u32,
    users: u32,
    next_session: u64,
    next_event: u64,
    ts: TsWriter,
}

/// Think time between two events of a session: 1 s .. 40 s, skewed short.
fn think(r: &mut Rng) -> i64 {
    (1_000.0 * (unit(r) * 40f64.ln()).exp()) as i64
}

impl AppGen {
    pub(crate) fn new(keys: Keys, accounts: u32, users: u32) -> Self {
        AppGen {
            sched: crate::sched::Scheduler::new(MAX_ACTIVE_SESSIONS),
            keys,
            accounts,
            users,
            next_session: 0,
            next_event: 0,
            ts: TsWriter::new(),
        }
    }

    fn new_session(&mut self, r: &mut Rng, now: i64) -> Session {
        let no = self.next_session;
        self.next_session += 1;
        let user = u64::from(below(r, self.users));
        // Fixed per user: platform, country, version, account.
        let h = mix64(user ^ self.keys.user);
        let (platform, versions) = match h % 100 {
            0..=39 => ("ios", &IOS_VERSIONS),
            40..=79 => ("android", &ANDROID_VERSIONS),
            _ => ("web", &WEB_VERSIONS),
        };
        let version = versions[match (h >> 8) % 100 {
            0..=49 => 0,
            50..=79 => 1,
            80..=94 => 2,
            _ => 3,
        }];
        let total: u32 = COUNTRIES.iter().map(|c| c.1).sum();
        let mut x = ((h >> 16) % u64::from(total)) as u32;
        let mut country = COUNTRIES[0].0;
        for (c, w) in COUNTRIES {
            if x < w {
                country = c;
                break;
            }
            x -= w;
        }
        let u = (h >> 32) as f64 / 4_294_967_296.0;
        let account = ((u * u * f64::from(self.accounts)) as u32).min(self.accounts - 1);
        Session {
            no,
            user,
            account,
            platform,
            version,
            country,
            phase: Phase::Activity,
            left: 1 + (unit(r).powi(2) * 30.0) as u32,
            opened_at: now,
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
        let Some(mut s) = self.sched.take(now) else {
            let mut s = self.new_session(r, now);
            let w = self.write(r, out, &s, "app_open", at, style, Fault::None);
            s.phase = if chance(r, 0.03) {
                Phase::Signup
            } else if chance(r, 0.35) {
                Phase::Login
            } else {
                Phase::Activity
            };
            self.sched.insert(s, now + range_i64(r, 1_000, 8_000));
            return w;
        };
        let event_type = match s.phase {
            Phase::Signup => {
                s.phase = Phase::Login;
                "signup"
            }
            Phase::Login => {
                s.phase = Phase::Activity;
                "login"
            }
            Phase::Activity => {
                s.left = s.left.saturating_sub(1);
                if s.left == 0 {
                    s.phase = Phase::End;
                }
                match below(r, 100) {
                    0..=44 => "page_view",
                    45..=72 => "button_click",
                    73..=97 => {
                        if chance(r, 0.03) {
                            "message_failed"
                        } else {
                            "message_sent"
                        }
                    }
                    _ => "purchase",
                }
            }
            Phase::End => {
                if chance(r, 0.3) {
                    "logout"
                } else {
                    "app_background"
                }
            }
        };
        let w = self.write(r, out, &s, event_type, at, style, Fault::None);
        if !matches!(event_type, "logout" | "app_background") {
            let due = now + think(r);
            self.sched.insert(s, due);
        }
        w
    }

    /// Writes a record of a fresh session that no valid record refers to, with `fault` applied.
    pub(crate) fn detached(&mut self, r: &mut Rng, now: i64, fault: Fault<'_>, out: &mut Vec<u8>) {
        let s = self.new_session(r, now);
        let event_type = pick_uniform(r, &["page_view", "button_click", "message_sent"]);
        let style = TsStyle::pick(r);
        self.write(r, out, &s, event_type, now, style, fault);
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        r: &mut Rng,
        out: &mut Vec<u8>,
        s: &Session,
        event_type: &'static str,
        at: i64,
        style: TsStyle,
        fault: Fault<'_>,
    ) -> Written {
        let event_no = self.next_event;
        self.next_event += 1;
        let keys = self.keys;
        let omit_version = below(r, 50) == 0;
        let omit_country = below(r, 50) == 0;
        let omit_props = event_type == "logout" && chance(r, 0.5);
        let extra = if chance(r, EXTRA_RATE) {
            Some(pick_uniform(r, &EXTRAS))
        } else {
            None
        };
        let mut occurred_ms = at;
        let ts = &mut self.ts;
        let mut o = JsonObj::begin(out, fault);
        o.field("event_id", |b| {
            b.push(b'"');
            push_event_id(b, event_no, keys.app_event);
            b.push(b'"');
        });
        o.str("event_type", event_type.as_bytes());
        o.field("occurred_at", |b| occurred_ms = ts.push(b, at, style));
        o.field("user_id", |b| {
            b.push(b'"');
            push_short_id(b, b"u_", s.user, keys.user);
            b.push(b'"');
        });
        o.field("account_id", |b| {
            b.push(b'"');
            push_sid(b, b"AC", u64::from(s.account), keys.account);
            b.push(b'"');
        });
        o.field("session_id", |b| {
            b.push(b'"');
            push_short_id(b, b"s_", s.no, keys.session);
            b.push(b'"');
        });
        o.str("platform", s.platform.as_bytes());
        if !omit_version {
            o.str("app_version", s.version.as_bytes());
        }
        if !omit_country {
            o.str("country", s.country.as_bytes());
        }
        if !omit_props {
            o.field("properties", |b| {
                write_properties(b, r, event_type, s, at, keys)
            });
        }
        if let Some(x) = extra {
            o.raw_member(x);
        }
        o.finish();
        Written {
            event_type,
            occurred_ms,
            duration_ms: None,
        }
    }
}

fn kv_str(b: &mut Vec<u8>, first: bool, k: &str, v: &str) {
    if !first {
        b.push(b',');
    }
    b.push(b'"');
    b.extend_from_slice(k.as_bytes());
    b.extend_from_slice(b"\":\"");
    b.extend_from_slice(v.as_bytes());
    b.push(b'"');
}

fn kv_num(b: &mut Vec<u8>, first: bool, k: &str, v: u64) {
    b.extend_from_slice(if first { b"\"" } else { b",\"" });
    b.extend_from_slice(k.as_bytes());
    b.extend_from_slice(b"\":");
    push_u64(b, v);
}

fn kv_bool(b: &mut Vec<u8>, first: bool, k: &str, v: bool) {
    b.extend_from_slice(if first { b"\"" } else { b",\"" });
    b.extend_from_slice(k.as_bytes());
    b.extend_from_slice(if v { b"\":true" } else { b"\":false" });
}

/// A small `properties` object that fits the event type.
fn write_properties(
    b: &mut Vec<u8>,
    r: &mut Rng,
    event_type: &str,
    s: &Session,
    at: i64,
    keys: Keys,
) {
    b.push(b'{');
    match event_type {
        "app_open" => {
            kv_bool(b, true, "cold_start", chance(r, 0.4));
            kv_num(b, false, "launch_ms", range_i64(r, 150, 2_500) as u64);
            kv_str(
                b,
                false,
                "network",
                if chance(r, 0.7) { "wifi" } else { "cellular" },
            );
        }
        "signup" => {
            kv_str(
                b,
                true,
                "method",
                pick_uniform(r, &["email", "google", "apple"]),
            );
            kv_str(
                b,
                false,
                "referral",
                pick_uniform(r, &["organic", "ads", "invite"]),
            );
        }
        "login" => {
            kv_str(
                b,
                true,
                "method",
                pick_uniform(r, &["password", "sso", "magic_link", "biometric"]),
            );
            kv_bool(b, false, "mfa", chance(r, 0.3));
        }
        "page_view" => {
            kv_str(b, true, "page", pick_uniform(r, &PAGES));
            kv_str(b, false, "referrer", pick_uniform(r, &PAGES));
            kv_num(b, false, "load_ms", range_i64(r, 40, 1_800) as u64);
        }
        "button_click" => {
            let (button, screen) = pick_uniform(r, &BUTTONS);
            kv_str(b, true, "button", button);
            kv_str(b, false, "screen", screen);
        }
        "message_sent" | "message_failed" => {
            kv_str(b, true, "channel", pick(r, &MSG_CHANNELS));
            kv_num(b, false, "length", range_i64(r, 1, 480) as u64);
            b.extend_from_slice(b",\"thread_id\":\"t_");
            push_hex(
                b,
                mix64(s.no ^ keys.thread).wrapping_add(u64::from(below(r, 3))),
                12,
            );
            b.push(b'"');
            if event_type == "message_failed" {
                kv_str(b, false, "error", pick_uniform(r, &MSG_ERRORS));
                kv_bool(b, false, "retryable", chance(r, 0.5));
            } else {
                kv_num(b, false, "attachments", u64::from(below(r, 10) / 8));
            }
        }
        "purchase" => {
            let (sku, cents) = pick_uniform(r, &SKUS);
            kv_str(b, true, "sku", sku);
            kv_num(b, false, "amount_cents", u64::from(cents));
            kv_str(b, false, "currency", "USD");
        }
        "logout" => kv_str(
            b,
            true,
            "reason",
            if chance(r, 0.8) {
                "user"
            } else {
                "session_expired"
            },
        ),
        _ => {
            // app_background
            kv_num(b, true, "foreground_ms", (at - s.opened_at).max(0) as u64);
        }
    }
    b.push(b'}');
}
