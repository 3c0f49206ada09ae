//! Ampere with a real CrowdSec Local API: two PBXes, each in a network namespace of its own
//! with its own test AMI server, database and nftables table, and one LAPI in a third
//! namespace. What one PBX bans, the other drops; what LAPI deletes, the other lifts; and
//! nothing goes round in circles.
//!
//! Needs root, iproute2, nftables and Debian's `crowdsec` package (installed offline by
//! `tests/install-deps.sh`): without them every test here FAILS saying so. `.ci/run` runs
//! them as root.

mod common;

#[path = "crowdsec/forged.rs"]
mod forged;
#[path = "crowdsec/lapi.rs"]
mod lapi;

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use lapi::{pbx_config, Lapi, Net};

const ATTACKER: &str = "203.0.113.50";

/// One PBX: the test AMI server (this binary's `inner_ami`, in the PBX's namespace, fed
/// attacks through its stdin) and the daemon.
struct Pbx {
    ns: String,
    setup: Setup,
    ami: Child,
    attacks: ChildStdin,
    daemon: Option<Daemon>,
}

impl Pbx {
    fn start(ns: &str, extra: &str) -> Pbx {
        let exe = std::env::current_exe().unwrap();
        let mut ami = {
            let _lock = exec_lock();
            Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(exe)
                .args(["--exact", "inner_ami", "--ignored", "--nocapture"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let attacks = ami.stdin.take().unwrap();
        let setup = Setup::new(
            Some("127.0.0.1:5038".parse().unwrap()),
            &format!("ipv6 = no\n{extra}"),
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, &bin()]);
        let daemon = Some(setup.spawn_in(cmd));
        let p = Pbx {
            ns: ns.to_string(),
            setup,
            ami,
            attacks,
            daemon,
        };
        wait_for(20, "AMI login", || {
            p.setup.log().contains("logged in to AMI")
        });
        p
    }

    /// An unknown account from `addr` over TCP: one event bans it.
    fn attack(&mut self, addr: &str) {
        writeln!(self.attacks, "{addr}").unwrap();
    }

    /// One event of `kind` for `account` from `addr` over `transport` (UDP, TCP).
    fn event(&mut self, kind: &str, transport: &str, addr: &str, account: &str) {
        writeln!(self.attacks, "{kind} {transport} {addr} {account}").unwrap();
    }

    /// The element of an nft set that is `addr` (an address or a network), if any (with
    /// its `timeout` and `expires` when it has an end).
    fn element(&self, addr: &str) -> Option<String> {
        // Addresses are in `v4`, networks in the interval set `net4`.
        let set = if addr.contains('/') { "net4" } else { "v4" };
        let (_, listed) = sh(&[
            "ip", "netns", "exec", &self.ns, "nft", "list", "set", "inet", "ampere", set,
        ]);
        // Elements are listed comma-separated, possibly several per line.
        listed
            .split([',', '{', '}', '\n'])
            .map(str::trim)
            .find(|e| e.split_whitespace().next() == Some(addr))
            .map(String::from)
    }

    fn in_kernel(&self, addr: &str) -> bool {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "nft",
            "get",
            "element",
            "inet",
            "ampere",
            "v4",
            &format!("{{ {addr} }}"),
        ])
        .0
    }

    fn ampere(&self, args: &[&str]) -> String {
        let (code, out, err) = self.setup.run(args, "");
        assert_eq!(code, 0, "ampere {}: {err}", args.join(" "));
        out
    }
}

impl Drop for Pbx {
    fn drop(&mut self) {
        drop(self.daemon.take());
        let _ = self.ami.kill();
        let _ = self.ami.wait();
    }
}

/// The AMI server of one PBX, on 127.0.0.1:5038 of the namespace it runs in: logged in,
/// then an InvalidAccountID event from each address read on stdin. Run by `Pbx::start`.
#[test]
#[ignore]
fn inner_ami() {
    let (tx, rx) = mpsc::channel();
    let _server = AmiServer::start_on(
        "127.0.0.1:5038",
        vec![Plan::Feed(Arc::new(Mutex::new(rx)))],
        Duration::ZERO,
    );
    for (i, line) in std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .enumerate()
    {
        // `ADDRESS`: an unknown account over TCP (one event bans); `KIND TRANSPORT ADDRESS
        // ACCOUNT`: that event.
        let event = match line.split_whitespace().collect::<Vec<_>>()[..] {
            [kind, transport, addr, account] => format!(
                "Event: {kind}\r\nService: PJSIP\r\nAccountID: {account}\r\nSessionID: s{i}\r\nRemoteAddress: IPV4/{transport}/{addr}/5060\r\n\r\n"
            ),
            _ => invalid_account_event(i as u64, &format!("IPV4/TCP/{}/5060", line.trim())),
        };
        tx.send(event.into_bytes()).unwrap();
    }
}

#[test]
fn two_pbxes_share_a_ban_and_its_deletion() {
    lapi::require();
    let net = Net::create(2);
    let lapi = Lapi::start(&net.lapi);
    lapi.add_pbx("pbx-a");
    lapi.add_pbx("pbx-b");
    let poll = Duration::from_secs(2);
    let mut a = Pbx::start(&net.pbx[0], &pbx_config(&net.url(1), "pbx-a", poll));
    let b = Pbx::start(&net.pbx[1], &pbx_config(&net.url(2), "pbx-b", poll));
    for p in [&a, &b] {
        wait_for(20, "the first pull", || {
            p.setup.log().contains("CrowdSec decisions (all)")
        });
    }

    a.attack(ATTACKER);
    wait_for(10, "A's ban", || a.setup.stored() == [ATTACKER]);
    let banned_on_a = Instant::now();
    // The database first, the kernel a moment later.
    wait_for(5, "A's kernel entry", || a.in_kernel(ATTACKER));
    wait_for(20, "B's ban", || b.in_kernel(ATTACKER));
    let to_b = banned_on_a.elapsed();
    println!(
        "measured: B dropped A's attacker {} ms after A's ban (crowdsec_poll 2 s)",
        to_b.as_millis()
    );
    assert!(
        to_b <= poll + Duration::from_secs(1),
        "B took {to_b:?}, more than crowdsec_poll + 1 s"
    );
    // B's ban is LAPI's decision: its origin and scenario, listed by -l and status.
    let list = b.ampere(&["-l"]);
    assert!(
        list.contains(ATTACKER) && list.contains("CrowdSec ampere/InvalidAccountID (from ampere)"),
        "{list}"
    );
    let status = b.ampere(&["status"]);
    assert!(status.contains("crowdsec 1"), "{status}");
    assert!(
        status.contains("[CrowdSec, scenario ampere/InvalidAccountID"),
        "{status}"
    );

    // A's own decision came back to A in its stream: recognised, not a second ban.
    wait_for(10, "A's next pull", || {
        a.setup.log().contains("1 known already")
    });
    let status = a.ampere(&["status"]);
    assert!(status.contains("1 active (daemon 1)"), "{status}");
    assert!(status.contains("crowdsec push: 1 pushed"), "{status}");

    // Only A alerted: B never pushes what it received.
    std::thread::sleep(poll * 2);
    let alerts = lapi.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains(ATTACKER) && alerts[0].ends_with(",pbx-a"),
        "{alerts:?}"
    );
    assert!(b.ampere(&["status"]).contains("crowdsec push: 0 pushed"));

    // The decision deleted in LAPI: B lifts it within a poll; A's own ban stays.
    lapi.cscli(&["decisions", "delete", "--ip", ATTACKER]);
    let deleted = Instant::now();
    wait_for(20, "B's unban", || !b.in_kernel(ATTACKER));
    let lifted = deleted.elapsed();
    println!(
        "measured: B lifted the deleted decision {} ms after `cscli decisions delete`",
        lifted.as_millis()
    );
    assert!(lifted <= poll + Duration::from_secs(1), "{lifted:?}");
    assert!(b.setup.stored().is_empty());
    // The kernel changes before the line is written.
    wait_for(5, "B's log line", || {
        b.setup
            .log()
            .contains(&format!("unban {ATTACKER}: CrowdSec deleted its decision"))
    });
    assert_eq!(a.setup.stored(), [ATTACKER]);
    assert!(a.in_kernel(ATTACKER));
}

#[test]
fn lapi_down_for_a_minute_costs_no_ban_and_loses_no_alert() {
    lapi::require();
    let net = Net::create(1);
    let mut lapi = Lapi::start(&net.lapi);
    lapi.add_pbx("pbx-a");
    let push_only = format!(
        "backend = nft\nnft = /usr/sbin/nft\ncrowdsec_url = {}\ncrowdsec_login = pbx-a\ncrowdsec_password = pw-pbx-a\n",
        net.url(1)
    );
    let mut a = Pbx::start(&net.pbx[0], &push_only);
    let time_to_ban = |a: &mut Pbx, addr: &str| {
        let start = Instant::now();
        a.attack(addr);
        wait_for(20, "the ban", || a.setup.stored().iter().any(|s| s == addr));
        start.elapsed()
    };
    let up = time_to_ban(&mut a, "203.0.113.60");
    wait_for(10, "the first alert", || lapi.alerts().len() == 1);

    lapi.stop();
    let mut down = Vec::new();
    for addr in ["203.0.113.61", "203.0.113.62", "203.0.113.63"] {
        down.push(time_to_ban(&mut a, addr));
    }
    let slowest = down.iter().max().unwrap();
    println!(
        "measured: time to ban with LAPI up {} ms, with LAPI down at most {} ms",
        up.as_millis(),
        slowest.as_millis()
    );
    assert!(
        *slowest < Duration::from_secs(2),
        "a ban waited for LAPI: {slowest:?}"
    );
    let log = a.setup.log();
    assert_eq!(
        log.matches("alert(s) wait").count(),
        1,
        "the outage is logged once:\n{log}"
    );
    std::thread::sleep(Duration::from_secs(60));

    // Back, with a new signing key: the old token is refused and A logs in again.
    lapi.run();
    let back = Instant::now();
    wait_for(30, "the queued alerts", || lapi.alerts().len() == 4);
    println!(
        "measured: the 3 queued alerts reached LAPI {} ms after it was back",
        back.elapsed().as_millis()
    );
    let status = a.ampere(&["status"]);
    assert!(
        status.contains("crowdsec push: 4 pushed, 0 waiting, 0 dropped"),
        "{status}"
    );
    assert!(status.contains(", 2 logins,"), "{status}");
    assert!(
        a.setup.log().contains("takes alerts again"),
        "{}",
        a.setup.log()
    );
}

#[test]
fn fifty_thousand_decisions_at_start_cost_under_a_mebibyte() {
    lapi::require();
    let net = Net::create(1);
    let lapi = Lapi::start(&net.lapi);
    lapi.add_pbx("pbx-a");
    let cfg = format!(
        "{}trust = 100.127.255.0/24\ncrowdsec_max = 60000\n",
        pbx_config(&net.url(1), "pbx-a", Duration::from_secs(2))
    );
    // The idle figure: the same daemon after an empty first pull.
    let idle = {
        let a = Pbx::start(&net.pbx[0], &cfg);
        wait_for(20, "the first pull", || {
            a.setup.log().contains("CrowdSec decisions (all)")
        });
        std::thread::sleep(Duration::from_secs(3));
        a.daemon.as_ref().unwrap().peak_rss_kib()
    };

    let mut csv = String::from("duration,scope,value\n");
    for i in 0..50_000u32 {
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + i);
        csv.push_str(&format!("4h,ip,{ip}\n"));
    }
    csv.push_str("4h,ip,100.127.255.7\n");
    let file = lapi.dir.path().join("list.csv");
    std::fs::write(&file, csv).unwrap();
    lapi.cscli(&["decisions", "import", "-i", file.to_str().unwrap()]);

    let a = Pbx::start(&net.pbx[0], &cfg);
    let start = Instant::now();
    wait_for(120, "the first pull", || {
        a.setup.log().contains("CrowdSec decisions (all)")
    });
    let took = start.elapsed();
    let peak = a.daemon.as_ref().unwrap().peak_rss_kib();
    let log = a.setup.log();
    assert!(
        log.contains(
            "CrowdSec decisions (all): 50000 new ban(s), 0 lifted, 0 known already, 1 refused"
        ),
        "{log}"
    );
    assert!(
        log.contains("CrowdSec decision to ban 100.127.255.7")
            && log.contains("refused: it is protected (trusted or local: 100.127.255.0/24)"),
        "{log}"
    );
    let (_, listed) = sh(&[
        "ip", "netns", "exec", &a.ns, "nft", "list", "set", "inet", "ampere", "v4",
    ]);
    let in_kernel = listed
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|t| {
            t.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.octets()[0] == 100)
        })
        .count();
    assert_eq!(in_kernel, 50_000, "elements in the kernel's set");
    println!(
        "measured: 50,000 decisions applied {} ms after the start; peak RSS {peak} KiB, idle {idle} KiB (+{} KiB)",
        took.as_millis(),
        peak as i64 - idle as i64
    );
    assert!(
        peak <= idle + 1024,
        "peak RSS {peak} KiB, more than 1 MiB over the idle {idle} KiB"
    );
}
