//! The session protocol without a socket: bytes in, bytes out, steps returned.

use super::link::Backoff;
use super::*;

fn settings() -> Settings {
    Settings::from(
        &crate::config::parse(
            b"user = guard\npass = s3cret\nping_interval = 30\nping_timeout = 10\n",
            "t",
        )
        .unwrap()
        .config,
    )
}

const BANNER: &[u8] = b"Asterisk Call Manager/9.0.0\r\n";

/// The SuccessfulAuth Asterisk sends for Ampere's own login (a security event).
const OWN_LOGIN: &[u8] =
    b"Event: SuccessfulAuth\r\nService: AMI\r\nAccountID: guard\r\nRemoteAddress: IPV4/TCP/127.0.0.1/4242\r\n\r\n";

fn login_ok(id: &str) -> Vec<u8> {
    format!("Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n")
        .into_bytes()
}

/// A session past its login, and the events it handed on.
fn ready(t0: Instant) -> Session {
    let mut s = Session::new(settings(), 7, t0);
    assert_eq!(
        s.received(BANNER, t0, &mut |_| panic!("no event yet")),
        Step::default()
    );
    let out = String::from_utf8(s.output().to_vec()).unwrap();
    assert!(out.starts_with("Action: Login\r\n"), "{out}");
    assert!(
        out.contains("Username: guard\r\n") && out.contains("Secret: s3cret\r\n"),
        "{out}"
    );
    assert!(out.contains("ActionID: ampere-login-7\r\n"), "{out}");
    let n = s.output().len();
    s.sent(n);
    let step = s.received(&login_ok("ampere-login-7"), t0, &mut |_| {
        panic!("not an event")
    });
    assert_eq!(
        step,
        Step {
            logged_in: true,
            closed: None
        }
    );
    assert!(s.is_ready());
    // After the login: who is registered, which endpoints are trunks (`ask.rs`).
    let out = String::from_utf8(s.output().to_vec()).unwrap();
    for action in [
        "PJSIPShowContacts",
        "SIPpeers",
        "IAXpeers",
        "PJSIPShowEndpoints",
    ] {
        assert!(out.contains(&format!("Action: {action}\r\n")), "{out}");
    }
    let n = s.output().len();
    s.sent(n);
    s
}

#[test]
fn banner_login_then_events_are_handed_on() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let mut seen = Vec::new();
    let step = s.received(
        b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\nEvent: InvalidPassword\r\nService: AMI\r\n\r\nResponse: Success\r\nActionID: x\r\n\r\n",
        t0,
        &mut |m| seen.push(String::from_utf8_lossy(m.get("Event").unwrap_or(b"-")).into_owned()),
    );
    assert_eq!(step, Step::default());
    // FullyBooted is the session's own; responses are never events.
    assert_eq!(seen, ["FullyBooted", "InvalidPassword"]);
}

#[test]
fn a_refused_login_fails_the_session() {
    let t0 = Instant::now();
    let mut s = Session::new(settings(), 1, t0);
    s.received(BANNER, t0, &mut |_| {});
    let step = s.received(
        b"Response: Error\r\nActionID: ampere-login-1\r\nMessage: Authentication failed\r\n\r\n",
        t0,
        &mut |_| {},
    );
    assert_eq!(step.closed, Some(Close::Failed("login refused".into())));
    assert!(!step.logged_in);
}

#[test]
fn an_answer_to_another_action_or_an_event_is_not_the_login_answer() {
    let t0 = Instant::now();
    let mut s = Session::new(settings(), 1, t0);
    s.received(BANNER, t0, &mut |_| {});
    // A security event carries an attacker-filled Response header; another client's
    // answer has another ActionID.
    let step = s.received(
        b"Event: ChallengeResponseFailed\r\nResponse: Error\r\n\r\nResponse: Error\r\nActionID: someone-else\r\n\r\n",
        t0,
        &mut |_| {},
    );
    assert_eq!(step, Step::default());
    assert!(!s.is_ready());
    assert!(
        s.received(&login_ok("ampere-login-1"), t0, &mut |_| {})
            .logged_in
    );
}

#[test]
fn shutdown_ends_the_session_as_lost_and_nothing_after_it_counts() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let mut seen = 0;
    let step = s.received(
        b"Event: Shutdown\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\nEvent: InvalidPassword\r\n\r\n",
        t0,
        &mut |_| seen += 1,
    );
    assert_eq!(step.closed, Some(Close::Lost("Asterisk shut down".into())));
    assert_eq!(seen, 0);
}

#[test]
fn silence_sends_a_ping_and_an_unanswered_ping_ends_the_session() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    s.received(OWN_LOGIN, t0, &mut |_| {});
    assert_eq!(s.next_timer(), Some(t0 + Duration::from_secs(30)));
    assert_eq!(s.tick(t0 + Duration::from_secs(29)), None);
    assert!(s.output().is_empty());
    assert_eq!(s.tick(t0 + Duration::from_secs(30)), None);
    let out = String::from_utf8(s.output().to_vec()).unwrap();
    assert!(
        out.starts_with("Action: Ping\r\n") && out.contains("ActionID: ampere-ping-8"),
        "{out}"
    );
    assert_eq!(s.next_timer(), Some(t0 + Duration::from_secs(40)));
    match s.tick(t0 + Duration::from_secs(40)) {
        Some(Close::Lost(why)) => assert!(why.contains("no answer to Ping within 10s"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn any_bytes_from_asterisk_answer_for_the_ping() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    s.received(OWN_LOGIN, t0, &mut |_| {});
    s.tick(t0 + Duration::from_secs(30));
    let t1 = t0 + Duration::from_secs(35);
    s.received(b"Event: PeerStatus\r\n\r\n", t1, &mut |_| {});
    assert_eq!(s.tick(t0 + Duration::from_secs(40)), None);
    assert_eq!(s.next_timer(), Some(t1 + Duration::from_secs(30)));
}

#[test]
fn no_banner_or_login_answer_in_time_fails() {
    let t0 = Instant::now();
    let mut s = Session::new(settings(), 1, t0);
    assert_eq!(s.next_timer(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(
        s.tick(t0 + Duration::from_secs(10)),
        Some(Close::Failed("no banner or login answer in time".into()))
    );
}

#[test]
fn oversized_lines_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let mut long = vec![b'x'; crate::ami::MAX_LINE + 10];
    long.extend_from_slice(b"\r\n\r\n");
    s.received(&long, t0, &mut |_| {});
    assert_eq!(s.dropped().0, 1);
}

#[test]
fn backoff_doubles_to_its_ceiling_and_a_lost_session_comes_back_fast() {
    let secs = Duration::from_secs;
    let ms = Duration::from_millis;
    let t0 = Instant::now();
    let mut b = Backoff::new(secs(1), secs(30));
    let delays: Vec<u64> = (0..7).map(|_| b.failed(t0).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    // A session that had worked: at once, then every 250 ms for a minute (an Asterisk
    // restart), then backing off again from the start if it stays down.
    assert_eq!(b.lost(t0), ms(100));
    assert_eq!(b.failed(t0 + ms(100)), ms(250));
    assert_eq!(b.failed(t0 + secs(59)), ms(250));
    assert_eq!(b.failed(t0 + secs(60)), secs(1));
    assert_eq!(b.failed(t0 + secs(61)), secs(2));
    b.lost(t0);
    b.logged_in();
    assert_eq!(b.failed(t0), secs(1), "a login ends the fast phase");
    b.set_limits(secs(5), secs(10));
    assert_eq!(b.failed(t0), secs(5));
    assert_eq!(b.failed(t0), secs(10));
}

#[test]
fn no_security_event_after_login_is_said_loudly_and_again_until_one_arrives() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    assert_eq!(s.next_timer(), Some(t0 + Duration::from_secs(5)));
    // Non-security events (all a `read = system` user gets) do not count.
    s.received(
        b"Event: FullyBooted\r\n\r\nEvent: Reload\r\nModule: manager\r\n\r\n",
        t0,
        &mut |_| {},
    );
    s.tick(t0 + Duration::from_secs(4));
    assert_eq!(s.blind_warnings(), 0);
    s.tick(t0 + Duration::from_secs(5));
    assert_eq!(s.blind_warnings(), 1);
    s.tick(t0 + Duration::from_secs(30));
    assert_eq!(s.blind_warnings(), 1, "said again only after a minute");
    s.tick(t0 + Duration::from_secs(65));
    assert_eq!(s.blind_warnings(), 2);
    s.received(OWN_LOGIN, t0 + Duration::from_secs(66), &mut |_| {});
    s.tick(t0 + Duration::from_secs(500));
    assert_eq!(
        s.blind_warnings(),
        2,
        "a security event proves that they are readable"
    );
}

#[test]
fn this_logins_own_success_arriving_in_time_is_enough() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let mut handed_on = 0;
    s.received(OWN_LOGIN, t0 + Duration::from_millis(10), &mut |_| {
        handed_on += 1
    });
    assert_eq!(handed_on, 1, "it is still scored like any event");
    s.tick(t0 + Duration::from_secs(600));
    assert_eq!(s.blind_warnings(), 0);
}
