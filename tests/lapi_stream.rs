//! The decision stream as a LAPI may send it, from a scripted test server whose answers the
//! test releases one at a time: a deletion that comes after a new decision for the same
//! address in one answer, a pull that fails and makes the next one read the whole list
//! again, and a whole list that no longer holds bans the daemon applied before.

mod common;

use std::fmt::Write as _;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;

/// The scripted LAPI: request `i` gets `answers[i]` (the last one for every later request),
/// once the test has released it (`released > i`). Keeps each request's first line.
struct Script {
    addr: SocketAddr,
    released: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Script {
    fn start(answers: Vec<String>, released: usize) -> Script {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let gate = Arc::new(AtomicUsize::new(released));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (g, r) = (gate.clone(), requests.clone());
        let answers = Arc::new(answers);
        thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                let (g, r, answers) = (g.clone(), r.clone(), answers.clone());
                thread::spawn(move || answer(s, &answers, &g, &r));
            }
        });
        Script {
            addr,
            released: gate,
            requests,
        }
    }

    fn release(&self, up_to: usize) {
        self.released.store(up_to, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn answer(mut s: TcpStream, answers: &[String], gate: &AtomicUsize, seen: &Mutex<Vec<String>>) {
    let Some(req) = request_head(&mut s) else {
        return;
    };
    let line = String::from_utf8_lossy(&req);
    let i = {
        let mut seen = seen.lock().unwrap();
        seen.push(line.lines().next().unwrap_or("").to_string());
        seen.len() - 1
    };
    while gate.load(Ordering::SeqCst) <= i {
        thread::sleep(Duration::from_millis(10));
    }
    // The lists come in two pieces, 300 ms apart: the daemon applies the first before it
    // reads the second.
    for (n, piece) in answers[i.min(answers.len() - 1)].split(PAUSE).enumerate() {
        if n > 0 {
            thread::sleep(Duration::from_millis(300));
        }
        if s.write_all(piece.as_bytes()).is_err() {
            return;
        }
    }
}

/// Where an answer's second piece starts.
const PAUSE: &str = "\0pause\0";

/// A 200 answer with these decisions (4 h bans of scope Ip).
fn stream(new: &[String], deleted: &[String]) -> String {
    let list = |addrs: &[String], duration: &str| {
        let mut o = String::new();
        for (i, a) in addrs.iter().enumerate() {
            let _ = write!(
                o,
                r#"{}{{"duration":"{duration}","origin":"CAPI","scenario":"test/scan","scope":"Ip","type":"ban","value":"{a}"}}"#,
                if i > 0 { "," } else { "" }
            );
        }
        o
    };
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{{\"new\":[{}],{PAUSE}\"deleted\":[{}]}}",
        list(new, "4h"),
        list(deleted, "-1s")
    )
}

const FAILURE: &str = "HTTP/1.0 500 Internal Server Error\r\n\r\n{\"message\":\"test\"}";

/// `n` addresses from `a.b.0.1` on.
fn many(a: u8, b: u8, n: u32) -> Vec<String> {
    (1..=n)
        .map(|i| format!("{a}.{b}.{}.{}", i / 256, i % 256))
        .collect()
}

fn daemon(script: &Script, extra: &str) -> (Setup, Daemon, mpsc::Sender<Vec<u8>>, AmiServer) {
    let (tx, rx) = mpsc::channel();
    let ami = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let setup = Setup::new(
        Some(ami.addr),
        &format!(
            "trust = 192.0.2.0/24\ncrowdsec_url = http://{}\ncrowdsec_bouncer_key = k\ncrowdsec_poll = 1\n{extra}",
            script.addr
        ),
    );
    let d = setup.spawn();
    wait_for(20, "AMI login", || setup.log().contains("logged in to AMI"));
    (setup, d, tx, ami)
}

/// Waits until the log holds `n` lines with `what`.
fn wait_lines(setup: &Setup, n: usize, what: &str) {
    wait_for(30, what, || setup.log().matches(what).count() >= n);
}

#[test]
fn a_deletion_never_undoes_a_newer_decision_and_a_whole_list_ends_what_it_no_longer_holds() {
    // The deletions come after the new decisions were applied, as a LAPI that wrote its
    // lists the other way round would send them.
    let first = many(100, 64, 300);
    let second = many(100, 65, 300);
    let script = Script::start(
        vec![
            stream(&first, &first[..2]),
            stream(&second, &[second[0].clone(), first[2].clone()]),
            FAILURE.to_string(),
            stream(&[first[1].clone(), second[0].clone()], &[]),
            stream(&[], &[]),
        ],
        1,
    );
    let stats = tempfile::tempdir().unwrap();
    let stats_file = stats.path().join("ampere.prom");
    let (setup, _d, events, _ami) = daemon(
        &script,
        &format!("statsfile = {}\nstats_interval = 1\n", stats_file.display()),
    );
    wait_lines(&setup, 1, "CrowdSec decisions (all):");
    let stored = setup.stored();
    assert_eq!(stored.len(), 300, "{}", setup.log());
    // The whole list's `deleted` is what ended before it: what it lists as new holds.
    assert!(stored.contains(&first[0]) && stored.contains(&first[1]));

    script.release(2);
    wait_lines(&setup, 1, "CrowdSec decisions:");
    let stored = setup.stored();
    assert!(
        stored.contains(&second[0]),
        "a deletion after a new decision in one answer lifted it: {}",
        setup.log()
    );
    assert!(!stored.contains(&first[2]), "a deletion was not applied");
    assert_eq!(stored.len(), 599, "{}", setup.log());

    // A ban of the daemon's own: no list from LAPI ends it.
    events
        .send(invalid_account_event(1, "IPV4/TCP/198.51.100.1/5060").into_bytes())
        .unwrap();
    wait_for(20, "the daemon's ban", || {
        setup.stored().contains(&"198.51.100.1".to_string())
    });

    // A failed pull: the next reads the whole list again, which holds two of the 599.
    script.release(5);
    wait_lines(&setup, 1, "CrowdSec no longer lists");
    let mut want = vec![
        first[1].clone(),
        second[0].clone(),
        "198.51.100.1".to_string(),
    ];
    want.sort();
    assert_eq!(setup.stored(), want, "{}", setup.log());
    let requests = script.requests();
    assert!(
        requests[3].contains("startup=true") && requests[1].contains("startup=false"),
        "{requests:?}"
    );
    assert!(
        setup.log().contains("CrowdSec no longer lists 597 ban(s)"),
        "{}",
        setup.log()
    );
    // CrowdSec's counters reach the Prometheus file (they never did): 300 + 300 banned,
    // one lifted by a deletion and 597 no longer listed, one failed pull.
    let prom = || std::fs::read_to_string(&stats_file).unwrap_or_default();
    let waited = std::time::Instant::now();
    while !(prom().contains("ampere_crowdsec_decisions_total{what=\"lifted\"} 598\n")
        && prom().contains("ampere_crowdsec_pulls_total{result=\"failed\"} 1\n"))
    {
        assert!(waited.elapsed().as_secs() < 10, "{}", prom());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let p = std::fs::read_to_string(&stats_file).unwrap();
    assert!(
        p.contains("# TYPE ampere_crowdsec_decisions_total counter\n")
            && p.contains("ampere_crowdsec_decisions_total{what=\"banned\"} 600\n"),
        "{p}"
    );
}

#[test]
fn bans_left_out_over_crowdsec_max_come_when_the_whole_list_made_room() {
    let script = Script::start(
        vec![
            stream(&many(100, 64, 2), &[]),
            FAILURE.to_string(),
            stream(&many(100, 66, 2), &[]),
            stream(&many(100, 66, 2), &[]),
            stream(&[], &[]),
        ],
        usize::MAX,
    );
    let (setup, _d, _events, _ami) = daemon(&script, "crowdsec_max = 2\n");
    wait_for(30, "the new list's bans", || {
        setup.stored() == many(100, 66, 2)
    });
    let requests = script.requests();
    assert!(
        requests.len() >= 4 && requests[3].contains("startup=true"),
        "{requests:?}"
    );
    assert!(
        setup.log().contains("2 over crowdsec_max"),
        "{}",
        setup.log()
    );
}
