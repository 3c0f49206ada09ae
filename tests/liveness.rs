//! The loop never blocks for long: whatever Ampere waits for (a firewall command stuck on a
//! lock, an AMI host that does not answer), SIGTERM ends it within a second and the bans
//! already decided are kept. The real binary, a test AMI server on loopback, the recorder.
//!
//! Where the machine is the variable (how fast a loaded box reaps a process), the bounds
//! are generous multiples of the promise; the stuck command itself takes 20 s.

mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn attack(addr: &str) -> Vec<u8> {
    (0..3)
        .flat_map(|k| invalid_account_event(k, &format!("IPV4/TCP/{addr}/5060")).into_bytes())
        .collect()
}

#[test]
fn sigterm_ends_the_daemon_within_a_second_while_a_firewall_command_hangs() {
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "login", || setup.log().contains("logged in"));
    setup.rec.slow("iptables", 20);
    setup.rec.slow("iptables-restore", 20);
    tx.send(attack("198.51.100.7")).unwrap();
    wait_for(10, "the hanging firewall command", || {
        setup.rec.calls().iter().any(|c| {
            c.stdin.contains("198.51.100.7") || c.args.iter().any(|a| a.contains("198.51.100.7"))
        })
    });
    let (code, took) = d.stop_timed();
    println!("measured: stopped {took:?} after SIGTERM with a firewall command hanging");
    assert_eq!(code, 0, "{}", setup.log());
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} (the command hangs 20 s)"
    );
    assert!(
        setup.log().contains("stopping took over 1 s"),
        "{}",
        setup.log()
    );
    assert_eq!(
        setup.stored(),
        ["198.51.100.7"],
        "the ban is in the database"
    );
}

/// A listener on loopback whose accept queue is full: a further connect gets no answer
/// (its SYN is dropped) until the connector gives up. Keeps the queue full while it lives.
struct Unanswering {
    addr: std::net::SocketAddr,
    _listener: std::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

impl Unanswering {
    fn new() -> Unanswering {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        while let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            queued.push(s);
            assert!(queued.len() < 10_000, "the accept queue never filled");
        }
        Unanswering {
            addr,
            _listener: listener,
            _queued: queued,
        }
    }
}

#[test]
fn an_ami_host_that_never_answers_a_connect_blocks_nothing() {
    let host = Unanswering::new();
    let setup = Setup::new(Some(host.addr), "connect_timeout = 30\n");
    let mut d = setup.spawn();
    wait_for(10, "the start", || setup.log().contains("restored"));
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    d.signal("USR1");
    wait_for(40, "the stats line", || setup.log().contains("stats: "));
    let answered = asked.elapsed();
    println!("measured: SIGUSR1 answered after {answered:?} while connecting");
    assert!(d.is_running());
    assert!(
        answered < Duration::from_secs(5),
        "the loop was blocked {answered:?} (connect_timeout is 30 s)"
    );
    let (code, took) = d.stop_timed();
    assert_eq!(code, 0, "{}", setup.log());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        !setup.log().contains("stopping took over"),
        "the stop itself waited for the connect:\n{}",
        setup.log()
    );
}
