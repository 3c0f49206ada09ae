//! Time to ban, on the real kernel: from writing the crossing event to Ampere's AMI socket to
//! the moment the attacker's packets stop reaching the PBX.
//!
//! Two network namespaces joined by a veth pair. In `pbx`: the chain as the README sets it
//! up, a UDP socket on 5060 that notes when it last heard from each source, a minimal AMI
//! server on loopback and the real `ampere`. In `atk`: a prober that sends a datagram every
//! ~100 µs from the address under test (one of its 10.77.0.0/16 addresses). For each of N
//! attackers the bench writes two events below the limit, waits, then writes the crossing
//! event (time T0); the ban is effective at the last datagram that still got through, so
//! the figure is `last datagram - T0`, exact to one probe interval (~0.1 ms).
//!
//! Baseline in the same run: the same backend's bare command, exec'd N times from here
//! (`iptables -w -I`, `ipset add`, `nft add element`): the floor any exec-per-ban tool pays.
//!
//! Then M more bans while an admin imports all along: `ampere -a` of 100,000 addresses, then
//! `-d` of them, over and over (2,000 in the smoke round); and M more with hostile clients
//! of the control socket attached all along (`load.rs`).
//!
//!   make bench-latency        (cargo bench --bench latency; root, iproute2, iptables, ipset, nft)
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a 30-attacker smoke round
//! per backend, which still asserts that every attacker was cut off.
//!
//! `AMPERE_BENCH_ROUNDS=in-place` runs only what the round with a million in place needs:
//! the set backends' empty rounds, then theirs with the million (a few minutes, not twenty);
//! `AMPERE_BENCH_BACKEND=ipset` (or `nft`) only that backend's.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "latency/load.rs"]
mod load;

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use load::{hostiles, importer, log_flood};

const PBX: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ATK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);

fn attacker(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, (i >> 8) as u8, i as u8)
}

/// The two namespaces; deleted on drop, also when the bench panics.
struct Net {
    pbx: String,
    atk: String,
}

impl Net {
    fn create(attackers: usize) -> Net {
        let id = std::process::id();
        let net = Net {
            pbx: format!("amplat{id}-pbx"),
            atk: format!("amplat{id}-atk"),
        };
        assert!(
            sh(&["id", "-u"]).1.trim() == "0" && sh(&["ip", "netns", "list"]).0,
            "the latency benchmark needs root and iproute2 (ip netns)"
        );
        let (vp, va) = (format!("lp{id}"), format!("la{id}"));
        veth_pair(
            &net.pbx,
            &net.atk,
            &vp,
            &va,
            &[&format!("{PBX}/24")],
            &[&format!("{ATK}/24")],
        );
        // The attackers' addresses, and the way back to them for rp_filter.
        must(&[
            "ip",
            "-n",
            &net.pbx,
            "route",
            "add",
            "10.77.0.0/16",
            "dev",
            &vp,
        ]);
        let batch: String = (0..attackers)
            .map(|i| format!("addr add {}/32 dev {va}\n", attacker(i)))
            .collect();
        let mut ip = Command::new("ip")
            .args(["-n", &net.atk, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        ip.stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
        assert!(
            ip.wait().unwrap().success(),
            "adding the attackers' addresses failed"
        );
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        sh(&["ip", "netns", "del", &self.pbx]);
        sh(&["ip", "netns", "del", &self.atk]);
    }
}

/// In the attacker namespace: reads an attacker index per line from stdin and sends from
/// that address to the PBX every ~100 µs until the next line (EOF ends it).
fn prober() {
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line.trim().parse().unwrap()).is_err() {
                return;
            }
        }
    });
    let target = SocketAddrV4::new(PBX, 5060);
    let mut sock: Option<UdpSocket> = None;
    loop {
        match rx.try_recv() {
            Ok(i) => sock = Some(UdpSocket::bind(SocketAddrV4::new(attacker(i), 0)).unwrap()),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        if let Some(s) = &sock {
            let _ = s.send_to(b"OPTIONS sip:100@pbx SIP/2.0\r\n\r\n", target);
        }
        thread::sleep(Duration::from_micros(50));
    }
}

/// When the PBX last heard from each attacker (ns since `base`; 0 = never).
struct Ears {
    base: Instant,
    last: Arc<Vec<AtomicU64>>,
}

impl Ears {
    fn start(n: usize) -> Ears {
        let sock = UdpSocket::bind("0.0.0.0:5060").unwrap();
        let last: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let base = Instant::now();
        let l = last.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((_, from)) = sock.recv_from(&mut buf) {
                if let std::net::SocketAddr::V4(a) = from {
                    let o = a.ip().octets();
                    let i = (usize::from(o[2]) << 8) | usize::from(o[3]);
                    if o[..2] == [10, 77] && i < l.len() {
                        l[i].store(base.elapsed().as_nanos() as u64, Ordering::SeqCst);
                    }
                }
            }
        });
        Ears { base, last }
    }

    fn last(&self, i: usize) -> u64 {
        self.last[i].load(Ordering::SeqCst)
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// A minimal AMI server for one client: banner, the Login answered, then whatever `send`
/// writes, straight to the socket (no thread or queue between T0 and the write).
struct Ami {
    stream: TcpStream,
}

impl Ami {
    fn accept(listener: &TcpListener) -> Ami {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .write_all(b"Asterisk Call Manager/11.0.0\r\n")
            .unwrap();
        let mut login = Vec::new();
        let mut buf = [0u8; 1024];
        while !login.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "ampere closed the AMI connection during login");
            login.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&login);
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("ActionID: "))
            .unwrap_or("")
            .trim();
        let ok = format!(
            "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
        );
        stream.write_all(ok.as_bytes()).unwrap();
        Ami { stream }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }
}

struct Prober {
    child: Child,
    stdin: ChildStdin,
}

impl Prober {
    fn start(atk: &str) -> Prober {
        let mut child = Command::new("ip")
            .args(["netns", "exec", atk])
            .arg(std::env::current_exe().unwrap())
            .env("AMPERE_BENCH_PROBER", "1")
            .env_remove("AMPERE_BENCH_INSIDE")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        Prober { child, stdin }
    }

    fn aim(&mut self, i: usize) {
        writeln!(self.stdin, "{i}").unwrap();
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup_chain() {
    must(&["iptables", "-w", "-N", "ampere"]);
    must(&[
        "iptables", "-w", "-I", "INPUT", "-p", "udp", "--dport", "5060", "-j", "ampere",
    ]);
    must(&["ip6tables", "-w", "-N", "ampere"]);
}

struct Figures {
    p50: f64,
    p99: f64,
    max: f64,
}

fn figures(mut ms: Vec<f64>) -> Figures {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    Figures {
        p50: at(0.50),
        p99: at(0.99),
        max: *ms.last().unwrap(),
    }
}

/// What runs beside the daemon while the bans are timed.
#[derive(Clone, Copy, PartialEq)]
enum Beside {
    Nothing,
    /// An admin imports and removes this many addresses all along.
    Import(usize),
    /// Hostile control-socket clients stay attached all along.
    Hostiles,
    /// Asterisk's log, followed by the log door, grows by 10 MB/s all along.
    LogFlood,
    /// This many bans in place (imported before the start), audited every 2 s.
    InPlace(usize),
}

/// What the loaded rounds did: each import's wall time, or how many hostile trios came.
#[derive(Default)]
struct Done {
    imports: Vec<(&'static str, f64)>,
    trios: usize,
    /// Bytes the log grew by.
    logged: u64,
    /// The loop's longest turn (ms) and the audits it made, from `status keys`.
    longest_turn: u64,
    audits: u64,
    /// How long the last survey took (ms), and the audit's interval that followed (s).
    audit_took: u64,
    audit_every: u64,
}

/// Time to ban of `n` attackers with `backend`, in ms, with `beside` running all along.
fn time_to_ban(
    backend: &str,
    n: usize,
    ears: &Ears,
    prober: &mut Prober,
    offset: usize,
    beside: Beside,
) -> (Vec<f64>, Done) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let logdir = tempfile::tempdir().unwrap();
    let logfile = logdir.path().join("messages");
    let door = if beside == Beside::LogFlood {
        format!("asterisk_log = {}\n", logfile.display())
    } else {
        String::new()
    };
    let audit = if matches!(beside, Beside::InPlace(_)) {
        "audit_interval = 2\n"
    } else {
        ""
    };
    // Each round starts from an empty kernel: a new database adopts the bans it finds.
    for t in ["iptables", "ip6tables"] {
        sh(&[t, "-w", "-F", "ampere"]);
    }
    for set in ["ampere-v4", "ampere-v6"] {
        sh(&["ipset", "flush", set]);
    }
    sh(&["nft", "delete", "table", "inet", "ampere"]);
    let setup = Setup::new(
        Some(addr),
        &format!(
            "iptables = /usr/sbin/iptables\nip6tables = /usr/sbin/ip6tables\n\
             iptables_restore = /usr/sbin/iptables-restore\nip6tables_restore = /usr/sbin/ip6tables-restore\n\
             backend = {}\nping_interval = 1h\nban_unknown_account = no\n{door}{audit}",
            // The nft exec path of the same run: the daemon without its `nft -i`.
            match backend {
                "nft-exec" => "nft\nnft_interactive = no",
                b => b,
            }
        ),
    );
    let in_place = match beside {
        Beside::InPlace(big) => {
            load::fill(&setup.cfg, big);
            big
        }
        _ => 0,
    };
    let d = setup.spawn();
    let mut ami = Ami::accept(&listener);
    // A start with a million bans restores them before it logs in.
    wait_for(300, "login", || setup.log().contains("logged in"));
    let import = match beside {
        Beside::Import(m) => Some(m),
        _ => None,
    };
    let admin = import.map(|m| importer(&setup.cfg, m));
    let attached = (beside == Beside::Hostiles).then(|| hostiles(setup.socket()));
    let flood = (beside == Beside::LogFlood).then(|| log_flood(&logfile, 10_000_000));
    if beside != Beside::Nothing {
        // The first import or the first hostile clients under way.
        thread::sleep(Duration::from_millis(200));
    }
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let i = offset + k;
        // TCP: strong evidence, banned as configured (UDP would be a weak, timed ban).
        let remote = format!("IPV4/TCP/{}/5060", attacker(i));
        prober.aim(i);
        wait_for(5, "the attacker's first datagram", || ears.last(i) > 0);
        let mut prime = invalid_account_event(0, &remote);
        prime.push_str(&invalid_account_event(1, &remote));
        ami.send(prime.as_bytes());
        thread::sleep(Duration::from_millis(3));
        let crossing = invalid_account_event(2, &remote);
        let t0 = ears.now();
        ami.send(crossing.as_bytes());
        // Cut off = nothing heard for 30 ms (300 probe intervals). During an import, a ban
        // waits for the firewall tool's own work on 100,000 entries: measured, not bounded.
        let limit = if import.is_some() { 60 } else { 5 };
        let end = Instant::now() + Duration::from_secs(limit);
        while ears.now().saturating_sub(ears.last(i)) < 30_000_000 {
            assert!(
                Instant::now() < end,
                "{backend}: attacker {} still gets through {limit} s after the crossing event\n{}",
                attacker(i),
                setup.log()
            );
            thread::sleep(Duration::from_millis(2));
        }
        out.push(ears.last(i).saturating_sub(t0) as f64 / 1e6);
    }
    let done = Done {
        imports: admin.map(load::Background::finish).unwrap_or_default(),
        trios: attached.map_or(0, load::Background::finish),
        logged: flood.map_or(0, load::Background::finish),
        ..Done::default()
    };
    // Bans the daemon made while an import held the lock are stored once it is free.
    let end = Instant::now() + Duration::from_secs(10);
    while setup.stored().len() != n + in_place {
        assert!(
            Instant::now() < end,
            "{backend}: {} of {n} bans stored 10 s after the last\n{}",
            setup.stored().len(),
            setup.log()
        );
        thread::sleep(Duration::from_millis(10));
    }
    let done = Done {
        longest_turn: setup.status_key("loop_longest_turn_ms").unwrap_or(0),
        audits: setup.status_key("audits").unwrap_or(0),
        audit_took: setup.status_key("audit_took_ms").unwrap_or(0),
        audit_every: setup.status_key("audit_every_s").unwrap_or(0),
        ..done
    };
    assert_eq!(d.stop(), 0);
    (out, done)
}

/// The bare command of `backend` for one ban, exec'd `n` times: ms each.
fn floor(backend: &str, n: usize, offset: usize) -> Vec<f64> {
    (0..n)
        .map(|k| {
            let a = format!("10.78.{}.{}", (offset + k) >> 8, (offset + k) & 255);
            let elem = format!("{{ {a} }}");
            let args: Vec<&str> = match backend {
                "iptables" => vec!["iptables", "-w", "-I", "ampfloor", "-s", &a, "-j", "DROP"],
                "ipset" => vec!["ipset", "-exist", "add", "ampfloor", &a, "timeout", "0"],
                _ => vec!["nft", "add", "element", "inet", "ampfloor", "v4", &elem],
            };
            let t = Instant::now();
            let ok = Command::new(args[0])
                .args(&args[1..])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let took = t.elapsed().as_secs_f64() * 1000.0;
            assert!(ok, "`{}` failed", args.join(" "));
            took
        })
        .collect()
}

fn prepare_floor(backend: &str) {
    match backend {
        "iptables" => {
            must(&["iptables", "-w", "-N", "ampfloor"]);
        }
        "ipset" => {
            must(&[
                "ipset", "create", "ampfloor", "hash:net", "timeout", "0", "maxelem", "1000000",
            ]);
        }
        _ => {
            must(&["nft", "add", "table", "inet", "ampfloor"]);
            must(&[
                "nft",
                "add set inet ampfloor v4 { type ipv4_addr; flags interval,timeout; }",
            ]);
        }
    }
}

/// Attackers per backend: alone, and while an admin imports (with nft, a ban during an
/// import of 100,000 costs up to the 1.7 s of one ban with 100,000 in place).
fn per_backend(smoke: bool) -> (usize, usize) {
    if smoke {
        (30, 30)
    } else {
        (1000, 200)
    }
}

fn inside(smoke: bool) {
    let (n, m) = per_backend(smoke);
    setup_chain();
    let ears = Ears::start(3 * (n + 4 * m) + n + 1);
    let atk = std::env::var("AMPERE_BENCH_INSIDE").unwrap();
    let mut prober = Prober::start(&atk);
    println!(
        "machine: {} cores, {}; {n} bans per backend",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!("time to ban: crossing event written -> attacker's datagrams stop arriving");
    println!();
    println!("| backend | time to ban p50 | p99 | max | bare exec p50 | p99 | p99 vs bare p99 |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let import = if smoke { 2_000 } else { 100_000 };
    let mut during = Vec::new();
    let mut hostile = Vec::new();
    let mut flooded = Vec::new();
    let mut big = Vec::new();
    let in_place = if smoke { 20_000 } else { 1_000_000 };
    let only_in_place = std::env::var("AMPERE_BENCH_ROUNDS").is_ok_and(|r| r == "in-place");
    let chosen = std::env::var("AMPERE_BENCH_BACKEND").ok();
    for (b, backend) in ["iptables", "ipset", "nft"].into_iter().enumerate() {
        let skipped = backend == "iptables" || chosen.as_deref().is_some_and(|c| c != backend);
        if only_in_place && skipped {
            continue;
        }
        let t = figures(time_to_ban(backend, n, &ears, &mut prober, b * n, Beside::Nothing).0);
        if only_in_place {
            println!(
                "| {backend} | {:.2} ms | {:.2} ms | {:.2} ms | | | |",
                t.p50, t.p99, t.max
            );
        } else {
            prepare_floor(backend);
            let f = figures(floor(backend, n, b * n));
            println!(
                "| {backend} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2}x |",
                t.p50,
                t.p99,
                t.max,
                f.p50,
                f.p99,
                t.p99 / f.p99
            );
            let at = 3 * n + b * m;
            let (ms, done) =
                time_to_ban(backend, m, &ears, &mut prober, at, Beside::Import(import));
            during.push((backend, figures(ms), t.p99, done.imports));
            let at = 3 * (n + m) + b * m;
            let (ms, done) = time_to_ban(backend, m, &ears, &mut prober, at, Beside::Hostiles);
            hostile.push((backend, figures(ms), t.p99, done.trios));
            let at = 3 * (n + 2 * m) + b * m;
            let (ms, done) = time_to_ban(backend, m, &ears, &mut prober, at, Beside::LogFlood);
            flooded.push((backend, figures(ms), t.p99, done.logged));
        }
        if backend != "iptables" {
            let at = 3 * (n + 3 * m) + b * m;
            let round = Beside::InPlace(in_place);
            let (ms, done) = time_to_ban(backend, m, &ears, &mut prober, at, round);
            big.push((backend, figures(ms), t.p99, done));
        }
        if backend == "nft" && !only_in_place {
            // The same backend by exec, for the pipe's gain.
            let at = 3 * (n + 4 * m);
            let e = figures(time_to_ban("nft-exec", n, &ears, &mut prober, at, Beside::Nothing).0);
            println!(
                "| nft, exec per batch (`nft_interactive = no`) | {:.2} ms | {:.2} ms | {:.2} ms | | | nft -i p99 / exec p99: {:.2}x |",
                e.p50,
                e.p99,
                e.max,
                t.p99 / e.p99
            );
        }
    }
    println!();
    println!("{m} more bans per backend while `ampere -a` and `-d` of {import} addresses run one after the other all along");
    println!();
    println!("| backend | time to ban p50 | p99 | max | p99 vs p99 without import | imports done (`-a` / `-d`) | `-a` took (median) | `-d` took (median) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (backend, t, alone, runs) in during {
        let median = |op: &str| {
            let mut v: Vec<f64> = runs.iter().filter(|r| r.0 == op).map(|r| r.1).collect();
            v.sort_by(f64::total_cmp);
            (v.len(), v.get(v.len() / 2).copied().unwrap_or(0.0))
        };
        let ((na, ma), (nd, md)) = (median("-a"), median("-d"));
        println!(
            "| {backend} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2}x | {na} / {nd} | {ma:.0} ms | {md:.0} ms |",
            t.p50,
            t.p99,
            t.max,
            t.p99 / alone
        );
    }
    println!();
    println!("{m} more bans per backend with hostile control-socket clients attached all along (each 200 ms: a silent one, one that asks `status` and never reads, one that sends without a newline)");
    println!();
    println!("| backend | time to ban p50 | p99 | max | p99 vs p99 without them | hostile trios |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (backend, t, alone, trios) in hostile {
        println!(
            "| {backend} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2}x | {trios} |",
            t.p50,
            t.p99,
            t.max,
            t.p99 / alone
        );
    }
    println!();
    println!("{m} more bans per backend while Asterisk's log, followed by the log door (`asterisk_log`), grows by 10 MB/s all along");
    println!();
    println!("| backend | time to ban p50 | p99 | max | p99 vs p99 without it | log written |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (backend, t, alone, logged) in flooded {
        println!(
            "| {backend} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2}x | {:.0} MB |",
            t.p50,
            t.p99,
            t.max,
            t.p99 / alone,
            logged as f64 / 1e6
        );
    }
    println!();
    println!("{m} more bans per set backend with {in_place} bans in place and `audit_interval = 2` (the audit lists the kernel in a child; iptables is not for a set this size)");
    println!();
    println!("| backend | time to ban p50 | p99 | max | p99 vs p99 of the empty round | audits | a survey took | audits then every | the loop's longest turn |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (backend, t, alone, done) in big {
        println!(
            "| {backend} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2}x | {} | {} ms | {} s | {} ms |",
            t.p50,
            t.p99,
            t.max,
            t.p99 / alone,
            done.audits,
            done.audit_took,
            done.audit_every,
            done.longest_turn
        );
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if std::env::var("AMPERE_BENCH_PROBER").is_ok() {
        prober();
        return;
    }
    if std::env::var("AMPERE_BENCH_INSIDE").is_ok() {
        inside(!bench);
        return;
    }
    let (n, m) = per_backend(!bench);
    let net = Net::create(3 * (n + 4 * m) + n + 1);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.pbx])
        .arg(std::env::current_exe().unwrap())
        .env("AMPERE_BENCH_INSIDE", &net.atk);
    if bench {
        cmd.arg("--bench");
    }
    let ok = cmd.status().is_ok_and(|s| s.success());
    drop(net);
    assert!(ok, "benchmark failed");
}
