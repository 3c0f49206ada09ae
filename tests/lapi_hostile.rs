//! A hostile CrowdSec LAPI: a test server on loopback that answers every pull of the
//! decision stream with one kind of trouble. One daemon per kind, side by side, with a test
//! AMI server and the recording firewall. Each kind gives its clear log line, nothing
//! trusted (or as wide as the internet) is banned, and a ban from AMI still comes as fast as
//! from a daemon without CrowdSec, measured in the same run.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[derive(Clone)]
enum Answer {
    /// A 200 with this body, then close.
    Body(&'static str),
    /// These bytes as they are, then close.
    Raw(&'static str),
    /// A 200 whose body comes one byte every 100 ms, forever.
    Slowloris,
    /// A 200 whose body is 100 MB of white space inside a stream's list.
    Huge,
}

/// The hostile LAPI: every connection gets `answer`; counts requests.
fn hostile(answer: Answer) -> (SocketAddr, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let seen = requests.clone();
    thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let answer = answer.clone();
            let seen = seen.clone();
            thread::spawn(move || serve(s, answer, &seen));
        }
    });
    (addr, requests)
}

fn serve(mut s: TcpStream, answer: Answer, seen: &AtomicU64) {
    if request_head(&mut s).is_none() {
        return;
    }
    seen.fetch_add(1, Ordering::SeqCst);
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
    let _ = match answer {
        Answer::Body(b) => s.write_all(head).and_then(|_| s.write_all(b.as_bytes())),
        Answer::Raw(b) => s.write_all(b.as_bytes()),
        Answer::Slowloris => (|| {
            s.write_all(head)?;
            s.write_all(b"{\"new\":[")?;
            loop {
                thread::sleep(Duration::from_millis(100));
                s.write_all(b" ")?;
            }
        })(),
        Answer::Huge => (|| {
            s.write_all(head)?;
            s.write_all(b"{\"new\":[")?;
            let chunk = vec![b' '; 1 << 16];
            for _ in 0..(100 << 20) / chunk.len() {
                s.write_all(&chunk)?;
            }
            s.write_all(b"]}")
        })(),
    };
}

/// A daemon with its AMI server, pulling from `lapi` (None: CrowdSec off).
struct Pbx {
    setup: Setup,
    events: mpsc::Sender<Vec<u8>>,
    _ami: AmiServer,
    _daemon: Daemon,
    n: u64,
}

impl Pbx {
    fn start(lapi: Option<SocketAddr>) -> Pbx {
        let (tx, rx) = mpsc::channel();
        let ami = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
        let extra = match lapi {
            Some(a) => format!(
                "trust = 192.0.2.0/24\ncrowdsec_url = http://{a}\ncrowdsec_bouncer_key = k\ncrowdsec_poll = 1\n"
            ),
            None => "trust = 192.0.2.0/24\n".to_string(),
        };
        let setup = Setup::new(Some(ami.addr), &extra);
        let daemon = setup.spawn();
        wait_for(20, "AMI login", || setup.log().contains("logged in to AMI"));
        Pbx {
            setup,
            events: tx,
            _ami: ami,
            _daemon: daemon,
            n: 0,
        }
    }

    /// Milliseconds from an event of a new attacker to its ban in the database.
    fn time_to_ban(&mut self) -> f64 {
        self.n += 1;
        let addr = format!("198.51.100.{}", self.n);
        let start = Instant::now();
        let ev = invalid_account_event(self.n, &format!("IPV4/TCP/{addr}/5060"));
        self.events.send(ev.into_bytes()).unwrap();
        wait_for(20, "the attacker's ban", || {
            self.setup.stored().contains(&addr)
        });
        start.elapsed().as_secs_f64() * 1000.0
    }
}

#[test]
fn a_hostile_lapi_costs_the_event_loop_nothing_and_bans_nothing_it_should_not() {
    let cases: Vec<(&str, Answer, &str)> = vec![
        (
            "malformed JSON",
            Answer::Body(r#"{"new":[{"value":}]}"#),
            "not a decision stream: expected a value, found `}` at byte 17",
        ),
        (
            "wrong types",
            Answer::Body(
                r#"{"new":[{"duration":4,"scope":"Ip","type":"ban","value":"203.0.113.1"},{"duration":"4h","scope":"Ip","type":"ban","value":["203.0.113.2"]}],"deleted":7}"#,
            ),
            "left out: its `duration` is not a string",
        ),
        (
            "huge numbers",
            Answer::Body(
                r#"{"new":[{"id":1e999999999,"duration":"99999999999999999999h","scope":"Ip","type":"ban","value":"203.0.113.3"},{"id":123456789012345678901234567890,"duration":"4h","scope":"Ip","type":"ban","value":"203.0.113.4"}]}"#,
            ),
            "is longer than a Go duration can be",
        ),
        (
            "everything, trusted and loopback included",
            Answer::Body(
                r#"{"new":[{"duration":"4h","scope":"Range","type":"ban","value":"0.0.0.0/0"},{"duration":"4h","scope":"Range","type":"ban","value":"::/0"},{"duration":"4h","scope":"Ip","type":"ban","value":"192.0.2.9"},{"duration":"4h","scope":"Range","type":"ban","value":"128.0.0.0/2"}]}"#,
            ),
            "CrowdSec decision to ban 0.0.0.0/0 refused: it is protected",
        ),
        (
            "100 MB body",
            Answer::Huge,
            "an answer longer than 67108864 bytes",
        ),
        (
            "100 MB announced",
            Answer::Raw("HTTP/1.0 200 OK\r\nContent-Length: 104857600\r\n\r\n{"),
            "an answer of 104857600 bytes",
        ),
        (
            "not HTTP",
            Answer::Raw("\u{1}\u{2}garbage\r\n\r\n"),
            "not an HTTP answer",
        ),
        ("slowloris", Answer::Slowloris, ""),
    ];
    let mut baseline = Pbx::start(None);
    let mut pbxes: Vec<(&str, Pbx, Arc<AtomicU64>, &str)> = cases
        .into_iter()
        .map(|(name, answer, line)| {
            let (addr, requests) = hostile(answer);
            (name, Pbx::start(Some(addr)), requests, line)
        })
        .collect();
    for (name, pbx, requests, line) in &pbxes {
        wait_for(30, name, || {
            requests.load(Ordering::SeqCst) > 0 && pbx.setup.log().contains(line)
        });
    }
    // Interleaved, so that the machine's load falls on all alike.
    let mut base_ms = Vec::new();
    let mut worst: Vec<f64> = vec![0.0; pbxes.len()];
    for _ in 0..5 {
        base_ms.push(baseline.time_to_ban());
        for (i, (_, pbx, ..)) in pbxes.iter_mut().enumerate() {
            worst[i] = worst[i].max(pbx.time_to_ban());
        }
    }
    let base = base_ms.iter().cloned().fold(0.0, f64::max);
    for ((name, pbx, ..), w) in pbxes.iter().zip(&worst) {
        println!(
            "measured: {name}: slowest time to ban {w:.1} ms, without CrowdSec {base:.1} ms ({:.2}x)",
            w / base.max(0.1)
        );
        let log = pbx.setup.log();
        assert!(!log.contains("panicked"), "{name}: {log}");
        // Only the AMI attackers are banned: nothing trusted, nothing from the stream's
        // refused or malformed entries.
        let stored = pbx.setup.stored();
        assert!(
            stored
                .iter()
                .all(|a| a.starts_with("198.51.100.") || a == "203.0.113.4"),
            "{name}: {stored:?}"
        );
        assert!(
            *w < 2000.0,
            "{name}: a ban took {w:.0} ms while LAPI misbehaved (without CrowdSec {base:.0} ms)"
        );
        let (code, out, err) = pbx.setup.run(&["status"], "");
        assert_eq!(code, 0, "{name}: status: {err}");
        assert!(out.contains("crowdsec pull:"), "{name}: {out}");
    }
    let (_, slow, ..) = &pbxes[pbxes.len() - 1];
    assert!(
        !slow.setup.log().contains("CrowdSec decisions (all)")
            && !slow.setup.log().contains("CrowdSec LAPI at"),
        "the slowloris answer is still being read: {}",
        slow.setup.log()
    );
}
