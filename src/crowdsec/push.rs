//! The watcher: every ban the daemon decides goes to LAPI as an alert with one decision.
//! A ban never waits for it: alerts queue in memory (bounded; the oldest go first when it
//! is full, counted), and are sent in groups, retried with a growing delay while LAPI is
//! down. The machine logs in for a token (`POST /v1/watchers/login`), again before it
//! runs out and whenever LAPI answers 401 (a restarted LAPI forgets its tokens).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Retry;
use crate::addr::{is_host, net_text};
use crate::ban::Ban;
use crate::clock;
use crate::http::{Exchange, Request, Step};
use crate::json::{quoted, Reader, Token};
use crate::log::printable;
use crate::sys::PollFd;
use crate::{debug, error, info};

/// Alerts kept while LAPI cannot take them.
pub const MAX_QUEUE: usize = 1000;
/// Alerts per request.
const PER_REQUEST: usize = 50;
/// LAPI's answers to a login or an alert are small.
const MAX_BODY: u64 = 64 * 1024;
const LIMIT: Duration = Duration::from_secs(30);
/// Tokens last an hour; a new one is asked for before that.
const TOKEN_LIFE: Duration = Duration::from_secs(50 * 60);

/// What is pushed of one ban.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub net: IpNet,
    /// The event kind that tipped it over (`InvalidPassword`), or `subnet`.
    pub kind: String,
    pub account: String,
    pub service: String,
    pub events: u32,
    pub since: i64,
    /// Seconds the decision lasts.
    pub seconds: u64,
}

impl Alert {
    /// A daemon's ban, with `permanent` seconds (`crowdsec_duration`) if it has no end.
    pub fn of(b: &Ban, permanent: u64, now: i64) -> Alert {
        Alert {
            net: b.net,
            kind: b.reason.clone(),
            account: b.account.clone(),
            service: b.service.clone(),
            events: b.events.max(1),
            since: b.since,
            seconds: clock::remaining(b.expires, now).unwrap_or(permanent),
        }
    }

    /// The alert as LAPI's `POST /v1/alerts` takes it: every field it requires, the
    /// attacker's text escaped.
    fn json(&self) -> String {
        let value = net_text(&self.net);
        let (scope, field) = if is_host(&self.net) {
            ("Ip", "ip")
        } else {
            ("Range", "range")
        };
        let scenario = quoted(&format!("ampere/{}", self.kind));
        let message = format!(
            "Ampere banned {value}: {} from account `{}` ({})",
            self.kind,
            printable(self.account.as_bytes()),
            printable(self.service.as_bytes())
        );
        let at = quoted(&clock::utc_rfc3339(self.since));
        let value = quoted(&value);
        format!(
            concat!(
                r#"{{"scenario":{sc},"scenario_hash":"","scenario_version":{ver},"#,
                r#""message":{msg},"events_count":{n},"start_at":{at},"stop_at":{at},"#,
                r#""capacity":0,"leakspeed":"0","simulated":false,"events":[],"#,
                r#""source":{{"scope":"{scope}","value":{v},"{field}":{v}}},"#,
                r#""decisions":[{{"origin":"ampere","type":"ban","scope":"{scope}","#,
                r#""value":{v},"duration":"{secs}s","scenario":{sc}}}]}}"#
            ),
            sc = scenario,
            ver = quoted(env!("CARGO_PKG_VERSION")),
            msg = quoted(&message),
            n = self.events,
            at = at,
            scope = scope,
            field = field,
            v = value,
            secs = self.seconds,
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub pushed: u64,
    /// Dropped from a full queue, or refused by LAPI as invalid.
    pub dropped: u64,
    pub rejected: u64,
    pub logins: u64,
    pub failures: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sending {
    Login,
    Alerts(usize),
}

pub struct Push {
    peer: SocketAddr,
    login: String,
    password: String,
    token: Option<(String, Instant)>,
    queue: VecDeque<Alert>,
    current: Option<(Exchange, Sending, Vec<u8>)>,
    next: Instant,
    retry: Retry,
    /// A 401 right after a fresh login is not retried at once.
    fresh_token: bool,
    pub counters: Counters,
}

impl Push {
    pub fn new(peer: SocketAddr, login: &str, password: &str) -> Push {
        Push {
            peer,
            login: login.to_string(),
            password: password.to_string(),
            token: None,
            queue: VecDeque::new(),
            current: None,
            next: Instant::now(),
            retry: Retry::new(),
            fresh_token: false,
            counters: Counters::default(),
        }
    }

    pub fn same_settings(&self, peer: SocketAddr, login: &str, password: &str) -> bool {
        self.peer == peer && self.login == login && self.password == password
    }

    /// The alerts waiting, taken over by a new `Push` after a reload.
    pub fn take_queue(&mut self) -> VecDeque<Alert> {
        std::mem::take(&mut self.queue)
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn queue(&mut self, alert: Alert) {
        if self.queue.len() >= MAX_QUEUE {
            self.queue.pop_front();
            self.counters.dropped += 1;
        }
        self.queue.push_back(alert);
    }

    pub fn next_timer(&self) -> Option<Instant> {
        match &self.current {
            Some((ex, ..)) => Some(ex.deadline()),
            None => (!self.queue.is_empty()).then_some(self.next),
        }
    }

    pub fn poll_fd(&self) -> Option<PollFd> {
        self.current.as_ref().map(|(ex, ..)| ex.poll_fd())
    }

    pub fn tick(&mut self, now: Instant) {
        if let Some((ex, ..)) = &self.current {
            if now >= ex.deadline() {
                let step = ex.timed_out();
                self.ended(step, now);
            }
            return;
        }
        if self.queue.is_empty() || now < self.next {
            return;
        }
        let token = self
            .token
            .as_ref()
            .filter(|(_, at)| now.duration_since(*at) < TOKEN_LIFE)
            .map(|(t, _)| t.clone());
        let (body, sending, auth) = match token {
            None => (
                format!(
                    r#"{{"machine_id":{},"password":{},"scenarios":[]}}"#,
                    quoted(&self.login),
                    quoted(&self.password)
                ),
                Sending::Login,
                None,
            ),
            Some(t) => {
                let n = self.queue.len().min(PER_REQUEST);
                let alerts: Vec<String> = self.queue.iter().take(n).map(Alert::json).collect();
                (
                    format!("[{}]", alerts.join(",")),
                    Sending::Alerts(n),
                    Some(format!("Bearer {t}")),
                )
            }
        };
        let headers: Vec<(&'static str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let target = match sending {
            Sending::Login => "/v1/watchers/login",
            Sending::Alerts(_) => "/v1/alerts",
        };
        let req = Request {
            method: "POST",
            target,
            headers: &headers,
            body: body.as_bytes(),
        };
        match Exchange::start(self.peer, &req, MAX_BODY, LIMIT) {
            Ok(ex) => self.current = Some((ex, sending, Vec::new())),
            Err(e) => self.failed(&format!("cannot connect: {e}"), now),
        }
    }

    pub fn ready(&mut self) {
        let Some((ex, _, body)) = &mut self.current else {
            return;
        };
        let step = ex.ready(&mut |_, bytes| {
            body.extend_from_slice(bytes);
            Ok(())
        });
        if step != Step::Pending {
            self.ended(step, Instant::now());
        }
    }

    fn ended(&mut self, step: Step, now: Instant) {
        let Some((_, sending, body)) = self.current.take() else {
            return;
        };
        let status = match step {
            Step::Done(s) => s,
            Step::Failed(e) => return self.failed(&e, now),
            Step::Pending => unreachable!("an exchange ends done or failed"),
        };
        let said = || printable(&body[..body.len().min(300)]);
        match (sending, status) {
            (Sending::Login, 200) => match token_of(&body) {
                Some(t) => {
                    self.counters.logins += 1;
                    debug!(
                        "logged in to CrowdSec LAPI at {} as {}",
                        self.peer, self.login
                    );
                    self.token = Some((t, now));
                    self.fresh_token = true;
                    self.next = now;
                }
                None => self.failed(&format!("a login answer without a token: {}", said()), now),
            },
            (Sending::Login, s) => self.failed(
                &format!(
                    "login as `{}` refused ({s}: {}); is it a machine from `cscli machines add`?",
                    self.login,
                    said()
                ),
                now,
            ),
            (Sending::Alerts(n), 200..=299) => {
                self.queue.drain(..n.min(self.queue.len()));
                self.counters.pushed += n as u64;
                self.fresh_token = false;
                if self.retry.succeeded() {
                    info!("CrowdSec LAPI at {} takes alerts again", self.peer);
                }
                self.next = now;
            }
            (Sending::Alerts(_), 401) if !self.fresh_token => {
                debug!(
                    "CrowdSec LAPI at {} no longer knows the token: logging in",
                    self.peer
                );
                self.token = None;
                self.next = now;
            }
            (Sending::Alerts(n), 400..=499) if status != 401 => {
                // LAPI will never take these: keeping them would block the queue.
                self.queue.drain(..n.min(self.queue.len()));
                self.counters.rejected += n as u64;
                error!(
                    "CrowdSec LAPI at {} refused {n} alert(s) ({status}): {}",
                    self.peer,
                    said()
                );
            }
            (Sending::Alerts(_), s) => {
                self.token = None;
                self.failed(&format!("alerts answered {s}: {}", said()), now);
            }
        }
    }

    fn failed(&mut self, why: &str, now: Instant) {
        self.counters.failures += 1;
        let msg = format!(
            "CrowdSec LAPI at {}: {why}; {} alert(s) wait",
            self.peer,
            self.queue.len()
        );
        self.next = now + self.retry.failed(&msg, true);
    }
}

/// The `token` of a login answer (`{"code":200,"expire":"...","token":"..."}`).
fn token_of(body: &[u8]) -> Option<String> {
    let mut r = Reader::new(4096);
    let mut depth = 0;
    let mut key_is_token = false;
    let mut token = None;
    r.feed(body, &mut |t| {
        match t {
            Token::BeginObject | Token::BeginArray => depth += 1,
            Token::EndObject | Token::EndArray => depth -= 1,
            Token::Key(k) => key_is_token = depth == 1 && k == "token",
            Token::Str(s) if key_is_token => token = Some(s.to_string()),
            _ => key_is_token = false,
        }
        Ok(())
    })
    .ok()?;
    r.finish(&mut |_| Ok(())).ok()?;
    token.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_read_from_the_login_answer_only_where_it_belongs() {
        let ok = br#"{"code":200,"expire":"2026-11-24T04:37:25Z","token":"eyJ.a-b_c.d"}"#;
        assert_eq!(token_of(ok).as_deref(), Some("eyJ.a-b_c.d"));
        for bad in [
            &br#"{"x":{"token":"a"}}"#[..],
            br#"{"token":5}"#,
            br#"{"token":"a b"}"#,
            br#"{"token":"a\r\nX-Evil: 1"}"#,
            br#"{"token":"a""#,
            b"",
        ] {
            assert_eq!(token_of(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn an_alert_is_json_whatever_the_attacker_put_in_its_account() {
        let a = Alert {
            net: "203.0.113.0/24".parse().unwrap(),
            kind: "InvalidPassword".into(),
            account: "\"},{\"evil\":1\n\u{1}".into(),
            service: "PJSIP".into(),
            events: 4,
            since: 1_795_491_445,
            seconds: 14_400,
        };
        let text = a.json();
        let mut r = Reader::new(4096);
        let mut strings = Vec::new();
        r.feed(text.as_bytes(), &mut |t| {
            if let Token::Str(s) | Token::Key(s) = t {
                strings.push(s.to_string());
            }
            Ok(())
        })
        .unwrap();
        r.finish(&mut |_| Ok(())).unwrap();
        assert!(!strings.iter().any(|s| s == "evil"), "{text}");
        for want in [
            "Range",
            "203.0.113.0/24",
            "range",
            "14400s",
            "ampere/InvalidPassword",
        ] {
            assert!(strings.iter().any(|s| s == want), "{want} in {text}");
        }
        assert!(text.contains(r#""events_count":4"#), "{text}");
        assert!(
            text.contains(r#""start_at":"2026-11-24T03:37:25Z""#),
            "{text}"
        );
    }
}
