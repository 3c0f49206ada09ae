//! End to end with the real kernel: an attacker and a PBX in network namespaces made by the
//! test, joined by a veth pair; inside the PBX the chain set up as the README says, a UDP
//! responder on 5060, a test AMI server replaying real captures (attacker address rewritten to
//! the attacker namespace's) and the real `ampere` with real iptables/ip6tables.
//!
//! Needs root, iproute2, iptables and conntrack: without them every test here FAILS with a
//! message saying so (it never passes by skipping). `.ci/run` installs them and runs as root.
//!
//! Not run under qemu-user for the cross targets (`cross/build.sh TRIPLE test` leaves it out):
//! it drives the host's own netfilter tools and namespaces, which an emulated test binary
//! would only reach through the host anyway, so it runs natively only.
//!
//! Each test creates its namespace pair (unique names; leftovers of aborted runs are removed
//! first), then re-runs this test binary inside the `pbx` namespace to play the scenario
//! (`inner_*` functions, ignored when run directly); the namespaces go away on drop, also
//! when the test panics.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[path = "netns/ceiling.rs"]
mod ceiling;
#[path = "netns/deleted.rs"]
mod deleted;
#[path = "netns/dns.rs"]
mod dns;
#[path = "netns/guard.rs"]
mod guard;
#[path = "netns/iax2.rs"]
mod iax2;
#[path = "netns/import.rs"]
mod import;
#[path = "netns/kernel.rs"]
mod kernel;
use kernel::*;
#[path = "netns/networks.rs"]
mod networks;
#[path = "netns/nftcli.rs"]
mod nftcli;
#[path = "netns/own.rs"]
mod own;
#[path = "netns/property.rs"]
mod property;
#[path = "netns/readme.rs"]
mod readme;
#[path = "netns/rules.rs"]
mod rules;
#[path = "netns/split.rs"]
mod split;

const PBX4: &str = "192.0.2.1";
const ATK4: &str = "192.0.2.66";
const PBX6: &str = "2001:db8:a3e::1";
const ATK6: &str = "2001:db8:a3e::66";
/// The attacker's own networks, routed to the PBX through `ATK4`/`ATK6` (the link's
/// 192.0.2.0/24 and 2001:db8:a3e::/64 are the PBX's own: never banned as a whole), each
/// with one address on the attacker's side.
const ATKNET4: &str = "198.51.100.0/24";
const ATKNET4_ADDR: &str = "198.51.100.66";
const ATKNET6: &str = "2001:db8:bad::/64";
const ATKNET6_ADDR: &str = "2001:db8:bad::66";
const PREFIX: &str = "ampt";

/// The real tools, and IPv6 scored per address: these scenarios follow one attacker
/// address (prefix scoring has a scenario of its own, `prefix_scenario`).
const REAL_TOOLS: &str = "iptables = /usr/sbin/iptables\nip6tables = /usr/sbin/ip6tables\n\
    iptables_restore = /usr/sbin/iptables-restore\nip6tables_restore = /usr/sbin/ip6tables-restore\n\
    ipv6_prefix = 128\n";

// ---------------------------------------------------------------------------------------
// Outer side: prerequisites and the network

fn require_root_and_tools() {
    let missing = lacking(&[
        "ip",
        "iptables",
        "ip6tables",
        "iptables-restore",
        "ip6tables-restore",
        "conntrack",
    ]);
    assert!(
        missing.is_empty(),
        "the network-namespace end-to-end tests need {}: apt-get install iproute2 iptables conntrack ipset nftables, and run as root",
        missing.join(", ")
    );
}

/// A pbx/attacker namespace pair; deleted on drop (panic included).
struct TestNet {
    pbx: String,
    atk: String,
    /// The PBX's end of the link.
    dev: String,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Namespaces of earlier runs whose process is gone (an aborted run) are deleted.
fn sweep_leftovers() {
    let (_, list) = sh(&["ip", "netns", "list"]);
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sh(&["ip", "netns", "del", name]);
        }
    }
}

impl TestNet {
    fn create() -> TestNet {
        require_root_and_tools();
        sweep_leftovers();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let mut net = TestNet {
            pbx: format!("{PREFIX}{id}-pbx"),
            atk: format!("{PREFIX}{id}-atk"),
            dev: String::new(),
        };
        // Interface names are limited to 15 characters.
        let (vp, va) = (
            format!("ap{}x{n}", std::process::id() % 100_000),
            format!("aa{}x{n}", std::process::id() % 100_000),
        );
        veth_pair(
            &net.pbx,
            &net.atk,
            &vp,
            &va,
            &[&format!("{PBX4}/24"), &format!("{PBX6}/64")],
            &[
                &format!("{ATK4}/24"),
                &format!("{ATK6}/64"),
                &format!("{ATKNET4_ADDR}/24"),
                &format!("{ATKNET6_ADDR}/64"),
            ],
        );
        must(&["ip", "-n", &net.pbx, "route", "add", ATKNET4, "via", ATK4]);
        must(&[
            "ip", "-n", &net.pbx, "-6", "route", "add", ATKNET6, "via", ATK6,
        ]);
        net.dev = vp;
        net
    }

    /// Runs `inner_<name>` of this binary inside the pbx namespace; fails with its output.
    fn run_inner(&self, name: &str) {
        self.run_with(name, &[]);
    }

    /// `run_inner` of a scenario for one backend (`backend()` inside).
    fn run_backend(&self, name: &str, backend: &str) {
        self.run_with(name, &[("AMPERE_NETNS_BACKEND", backend)]);
    }

    /// `run_inner` with more of the environment set.
    fn run_with(&self, name: &str, env: &[(&str, &str)]) {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.pbx])
            .arg(&exe)
            .args([
                "--exact",
                name,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AMPERE_NETNS_ATK", &self.atk)
            .env("AMPERE_NETNS_DEV", &self.dev)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = printed(&out);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{name} {env:?} inside {}:\n{text}",
            self.pbx
        );
        for line in text
            .lines()
            .filter_map(|l| l.find("measured: ").map(|i| &l[i..]))
        {
            println!("{name}: {line}");
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.pbx));
        let _ = sh(&["ip", "netns", "del", &self.pbx]);
        let _ = sh(&["ip", "netns", "del", &self.atk]);
    }
}

#[test]
fn ipv4_ban_drops_the_attacker_and_cuts_its_established_flow() {
    TestNet::create().run_inner("inner_ipv4_ban");
}

#[test]
fn ipv6_ban_through_ip6tables() {
    TestNet::create().run_inner("inner_ipv6_ban");
}

#[test]
fn trusted_attacker_is_never_banned() {
    TestNet::create().run_inner("inner_trusted");
}

#[test]
fn restart_flushes_stray_rules_and_restores_in_one_batch() {
    TestNet::create().run_inner("inner_restart");
}

#[test]
fn sigkill_at_random_moments_never_loses_or_duplicates_a_ban() {
    TestNet::create().run_inner("inner_crash");
}

#[test]
fn admin_add_and_del_change_the_kernel_at_once() {
    TestNet::create().run_inner("inner_admin");
}

#[test]
fn every_backend_bans_expires_escalates_and_keeps_the_time_through_a_restart() {
    for backend in BACKENDS {
        TestNet::create().run_backend("inner_backend", backend);
    }
}

#[test]
fn slow_consumer_keeps_up_with_50k_events_per_second_during_ban_bursts() {
    for backend in BACKENDS {
        TestNet::create().run_backend("inner_slow_consumer", backend);
    }
}

#[test]
fn property_kernel_equals_database_after_any_ban_unban_restart_sequence() {
    for backend in BACKENDS {
        TestNet::create().run_backend("property::inner_property", backend);
    }
}

#[test]
fn an_asterisk_restart_leaves_an_attacker_a_rate_limited_window_only() {
    // Per backend: the same restart with the guard off and on; then a trusted flooder.
    for backend in BACKENDS {
        for guard in ["off", "on"] {
            TestNet::create().run_with(
                "guard::inner_blind",
                &[
                    ("AMPERE_NETNS_BACKEND", backend),
                    ("AMPERE_NETNS_GUARD", guard),
                ],
            );
        }
    }
    TestNet::create().run_inner("guard::inner_blind_trusted");
}

#[test]
fn the_flood_guard_limits_each_source_and_never_a_trusted_one() {
    for backend in BACKENDS {
        TestNet::create().run_backend("guard::inner_flood", backend);
    }
}

#[test]
fn nft_bans_beyond_its_timeout_ceiling_and_overlapping_ones_never_fail_a_start() {
    TestNet::create().run_inner("inner_nft_long_bans");
}

#[test]
fn a_mixed_batch_with_the_ipv6_chain_gone_inserts_each_ipv4_rule_once() {
    TestNet::create().run_inner("inner_mixed_batch");
}

#[test]
fn the_ami_host_named_in_the_config_is_never_banned_even_if_it_resolved_late() {
    let net = TestNet::create();
    // `ip netns exec` puts /etc/netns/<ns>/hosts over /etc/hosts: the name does not resolve
    // yet; the inner test adds it while Ampere is retrying.
    let dir = format!("/etc/netns/{}", net.pbx);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/hosts"), "127.0.0.1 localhost\n").unwrap();
    net.run_inner("inner_ami_host_by_name");
}

#[test]
fn nft_bans_go_through_one_nft_i_child() {
    TestNet::create().run_inner("nftcli::inner_nftcli");
}

#[test]
fn nft_removes_many_without_listing_its_addresses() {
    TestNet::create().run_inner("nftcli::inner_many_removed");
}

#[test]
fn an_nft_without_its_interactive_mode_is_execd() {
    TestNet::create().run_inner("nftcli::inner_no_cli");
}

#[test]
fn the_readme_s_set_up_steps_ban_an_attacker() {
    TestNet::create().run_inner("readme::inner_readme");
}

#[test]
fn a_name_server_that_never_answers_never_holds_the_loop() {
    let net = TestNet::create();
    // `ip netns exec` puts /etc/netns/<ns>/* over /etc/*: no name in hosts, and a name
    // server that never answers (dns.rs binds it).
    let dir = format!("/etc/netns/{}", net.pbx);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(format!("{dir}/resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    net.run_inner("dns::inner_dns");
}

#[test]
fn a_flushed_chain_set_or_table_is_repaired_while_running() {
    for backend in BACKENDS {
        TestNet::create().run_backend("inner_repair", backend);
    }
}

#[test]
fn an_ipv6_64_is_one_attacker_unless_it_takes_in_a_trusted_address() {
    for backend in BACKENDS {
        TestNet::create().run_backend("networks::inner_prefix", backend);
    }
}

#[test]
fn three_bans_in_one_24_become_one_subnet_ban() {
    for backend in BACKENDS {
        TestNet::create().run_backend("networks::inner_subnet", backend);
    }
}

#[test]
fn the_pbx_s_own_addresses_and_link_are_never_one_attacker() {
    for backend in BACKENDS {
        TestNet::create().run_backend("own::inner_own", backend);
    }
}

#[test]
fn an_address_banned_from_an_iax2_log_line_loses_4569_and_5060() {
    for backend in BACKENDS {
        TestNet::create().run_backend("iax2::inner_iax2", backend);
    }
}

#[test]
fn trust_added_over_a_network_ban_frees_only_what_it_trusts() {
    for backend in BACKENDS {
        TestNet::create().run_backend("split::inner_split", backend);
    }
}

#[test]
fn the_audit_makes_flushed_or_bypassed_rules_again_and_names_a_bad_input_order() {
    for backend in BACKENDS {
        TestNet::create().run_backend("rules::inner_rules", backend);
    }
}

#[test]
fn a_stop_right_after_the_database_was_deleted_keeps_every_ban() {
    for backend in BACKENDS {
        TestNet::create().run_backend("deleted::inner_deleted", backend);
    }
}

#[test]
fn a_long_import_leaves_the_kernel_equal_to_the_database() {
    for backend in ["ipset", "nft"] {
        TestNet::create().run_backend("import::inner_import", backend);
    }
}

#[test]
fn another_tables_reload_leaves_the_nft_bans() {
    TestNet::create().run_inner("networks::inner_coexist");
}

#[test]
fn max_bans_holds_under_a_flood_of_distinct_attackers() {
    for backend in BACKENDS {
        TestNet::create().run_backend("ceiling::inner_ceiling", backend);
    }
}

#[test]
fn the_audit_reads_reject_rules_and_never_doubles_them() {
    TestNet::create().run_inner("inner_audit_reject");
}

#[test]
fn namespaces_are_removed_on_drop_even_after_a_panic() {
    let names = std::panic::catch_unwind(|| {
        let net = TestNet::create();
        let names = (net.pbx.clone(), net.atk.clone());
        std::panic::panic_any(names);
    })
    .unwrap_err();
    let (pbx, atk) = names.downcast_ref::<(String, String)>().unwrap().clone();
    let list = must(&["ip", "netns", "list"]);
    assert!(!list.contains(&pbx) && !list.contains(&atk), "{list}");
}

// ---------------------------------------------------------------------------------------
// Inner side: runs inside the pbx namespace

fn inside() -> Option<String> {
    std::env::var("AMPERE_NETNS_ATK").ok()
}

/// The backend an `inner_*` scenario runs with, set by the outer test (`run_backend`).
fn backend() -> String {
    std::env::var("AMPERE_NETNS_BACKEND").expect("AMPERE_NETNS_BACKEND is set by the outer test")
}

/// The chain as the README tells users to set it up, behind an ESTABLISHED accept rule that
/// the README's `-I INPUT` jump goes in front of.
fn setup_chain() {
    for t in ["iptables", "ip6tables"] {
        must(&[
            t,
            "-w",
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ]);
        must(&[t, "-w", "-N", "ampere"]);
        must(&[
            t,
            "-w",
            "-I",
            "INPUT",
            "-p",
            "udp",
            "-m",
            "multiport",
            "--dports",
            "5060,4569",
            "-j",
            "ampere",
        ]);
        must(&[
            t,
            "-w",
            "-I",
            "INPUT",
            "-p",
            "tcp",
            "-m",
            "multiport",
            "--dports",
            "5060,5061",
            "-j",
            "ampere",
        ]);
    }
}

/// Addresses in the chain, each `-s` value without its prefix length, in order.
fn rules(tool: &str) -> Vec<String> {
    must(&[tool, "-w", "-S", "ampere"])
        .lines()
        .filter_map(|l| l.strip_prefix("-A ampere -s "))
        .map(|l| {
            let net = l.split_whitespace().next().unwrap();
            net.trim_end_matches("/32")
                .trim_end_matches("/128")
                .to_string()
        })
        .collect()
}

/// Packets counted by the rule for `addr` in the chain.
fn rule_packets(tool: &str, addr: &str) -> u64 {
    let out = must(&[tool, "-w", "-L", "ampere", "-v", "-n", "-x"]);
    out.lines()
        .find(|l| {
            l.split_whitespace()
                .any(|f| f == addr || f == format!("{addr}/128"))
        })
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no rule for {addr}:\n{out}"))
}

/// Echoes datagrams on SIP's 5060 and IAX2's 4569 (IPv4 and IPv6).
fn start_responder() {
    for port in [5060, 4569] {
        let sock = UdpSocket::bind(format!("[::]:{port}")).expect("bind the responder");
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        });
    }
}

/// The attacker: one UDP socket (one conntrack flow) sending a datagram every 20 ms from
/// the attacker namespace; counts answers.
struct Prober {
    child: Child,
    answers: Arc<AtomicU64>,
}

impl Prober {
    fn start(target: &str) -> Prober {
        Prober::start_from(target, None)
    }

    /// A prober sending from `from` (one of the attacker's addresses), or from the address
    /// the route gives.
    fn start_from(target: &str, from: Option<&str>) -> Prober {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &inside().unwrap()])
            .arg(&exe)
            .args([
                "--exact",
                "inner_prober",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AMPERE_PROBE_TARGET", target)
            .env("AMPERE_PROBE_FROM", from.unwrap_or(""))
            .env_remove("AMPERE_NETNS_ATK")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let answers = Arc::new(AtomicU64::new(0));
        let a = answers.clone();
        let out = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if line.contains("ANSWER") {
                    a.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let p = Prober { child, answers };
        wait_for(10, "first answer to the prober", || p.answers() > 0);
        p
    }

    fn answers(&self) -> u64 {
        self.answers.load(Ordering::SeqCst)
    }

    /// Answers received during `ms` milliseconds.
    fn answered_within(&self, ms: u64) -> u64 {
        let a = self.answers();
        thread::sleep(Duration::from_millis(ms));
        self.answers() - a
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run by `Prober` inside the attacker namespace.
#[test]
#[ignore = "helper: the attacker's UDP sender, run inside a namespace by the netns tests"]
fn inner_prober() {
    let Ok(target) = std::env::var("AMPERE_PROBE_TARGET") else {
        return;
    };
    let target: SocketAddr = target.parse().unwrap();
    let from = std::env::var("AMPERE_PROBE_FROM").unwrap_or_default();
    let bind = match (from.as_str(), target.is_ipv6()) {
        ("", true) => "[::]:0".to_string(),
        ("", false) => "0.0.0.0:0".to_string(),
        (a, true) => format!("[{a}]:0"),
        (a, false) => format!("{a}:0"),
    };
    let sock = UdpSocket::bind(&bind).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs(110);
    let mut seq = 0u64;
    while Instant::now() < end {
        seq += 1;
        let msg = format!("OPTIONS sip:100@pbx SIP/2.0\r\nCSeq: {seq} OPTIONS\r\n\r\n");
        let _ = sock.send_to(msg.as_bytes(), target);
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n > 0 {
                println!("ANSWER {seq}");
            }
        }
    }
}

/// Ampere in this namespace with real iptables, fed by a channel-driven AMI server.
struct Pbx {
    setup: Setup,
    server: AmiServer,
    feed: mpsc::Sender<Vec<u8>>,
}

impl Pbx {
    fn new(extra: &str) -> Pbx {
        setup_chain();
        start_responder();
        let (tx, rx) = mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        let server = AmiServer::start(vec![Plan::Feed(rx); 200]);
        let setup = Setup::new(Some(server.addr), &format!("{REAL_TOOLS}{extra}"));
        Pbx {
            setup,
            server,
            feed: tx,
        }
    }

    fn send(&self, msg: &[u8]) {
        self.feed.send(msg.to_vec()).unwrap();
    }

    fn logged_in(&self, n: usize) {
        wait_for(10, "AMI login", || {
            self.setup.log().matches("logged in to AMI").count() >= n
        });
    }
}

/// Index of the message after which `ampere --replay` first bans `addr`.
fn crossing_index(events: &[Vec<u8>], addr: &str) -> usize {
    let cfg = ampere::config::parse(b"ipv6_prefix = 128\n", "t")
        .unwrap()
        .config;
    let mut acc = b"Asterisk Call Manager/11.0.0\r\n\r\n".to_vec();
    for (i, e) in events.iter().enumerate() {
        acc.extend_from_slice(e);
        let o = ampere::replay::replay(&cfg, &acc, &mut std::io::sink()).unwrap();
        if o.bans.iter().any(|b| ampere::addr::net_text(b) == addr) {
            return i;
        }
    }
    panic!("{addr} is never banned by these events");
}

/// Sends the capture message by message; the attacker is answered until the crossing event,
/// then the rule is there, the attacker gets nothing more and the rule's counter grows.
fn ban_scenario(tool: &str, file: &str, rewrite: &[(&str, &str)], atk: &str, target: &str) {
    let pbx = Pbx::new("");
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let prober = Prober::start(target);
    if tool == "iptables" {
        // The attacker's flow is an established conntrack entry before it is banned.
        let ct = must(&[
            "conntrack",
            "-L",
            "-p",
            "udp",
            "--orig-src",
            atk,
            "--orig-port-dst",
            "5060",
        ]);
        assert!(
            ct.contains(&format!("src={atk}")),
            "no conntrack entry for the flow:\n{ct}"
        );
    }
    let events = fixture_events(file, rewrite);
    let cross = crossing_index(&events, atk);
    for (i, e) in events.iter().enumerate() {
        assert!(
            rules(tool).is_empty(),
            "banned before the crossing event (message {i})"
        );
        assert!(
            prober.answered_within(100) > 0,
            "no answers before the crossing event"
        );
        pbx.send(e);
        if i == cross {
            break;
        }
    }
    let sent = Instant::now();
    wait_for(5, "the rule", || rules(tool) == [atk]);
    println!(
        "measured: rule in the chain {:?} after the crossing event was written",
        sent.elapsed()
    );
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        prober.answered_within(600),
        0,
        "the banned attacker still gets answers"
    );
    let before = rule_packets(tool, atk);
    thread::sleep(Duration::from_millis(300));
    assert!(
        rule_packets(tool, atk) > before,
        "the rule's packet counter does not grow"
    );
    assert_eq!(pbx.setup.stored(), [atk]);
    assert_eq!(d.stop(), 0);
    // The rule outlives the daemon.
    assert_eq!(rules(tool), [atk]);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see ipv4_ban_drops_the_attacker_and_cuts_its_established_flow)"]
fn inner_ipv4_ban() {
    if inside().is_none() {
        return;
    }
    ban_scenario(
        "iptables",
        "pjsip-wrong-password.ami",
        &[("10.99.1.2", ATK4)],
        ATK4,
        &format!("{PBX4}:5060"),
    );
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see ipv6_ban_through_ip6tables)"]
fn inner_ipv6_ban() {
    if inside().is_none() {
        return;
    }
    ban_scenario(
        "ip6tables",
        "ipv6.ami",
        &[("2001:db8:99::2", ATK6)],
        ATK6,
        &format!("[{PBX6}]:5060"),
    );
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see trusted_attacker_is_never_banned)"]
fn inner_trusted() {
    if inside().is_none() {
        return;
    }
    let pbx = Pbx::new("trust = 192.0.2.0/24\ntrust = 2001:db8:a3e::/48\n");
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let prober = Prober::start(&format!("{PBX4}:5060"));
    let mut sent = 0;
    for (file, from, to) in [
        ("pjsip-wrong-password.ami", "10.99.1.2", ATK4),
        ("pjsip-flood.ami", "203.0.113.2", ATK4),
        ("ipv6.ami", "2001:db8:99::2", ATK6),
    ] {
        for e in fixture_events(file, &[(from, to)]) {
            if String::from_utf8_lossy(&e).contains("Event: ChallengeResponseFailed") {
                sent += 1;
            }
            pbx.send(&e);
        }
    }
    // All processed: the counters show every ChallengeResponseFailed.
    wait_for(20, "all events processed", || {
        d.signal("USR1");
        thread::sleep(Duration::from_millis(100));
        pbx.setup
            .log()
            .contains(&format!("ChallengeResponseFailed={sent} "))
    });
    assert!(rules("iptables").is_empty() && rules("ip6tables").is_empty());
    assert!(pbx.setup.stored().is_empty());
    assert!(
        prober.answered_within(300) > 0,
        "the trusted host lost its answers"
    );
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see restart_flushes_stray_rules_and_restores_in_one_batch)"]
fn inner_restart() {
    if inside().is_none() {
        return;
    }
    // Count restore executions through a wrapper around the real tool.
    let pbx0 = Pbx::new("");
    let count = pbx0.setup.dir.path().join("restore-calls");
    for t in ["iptables-restore", "ip6tables-restore"] {
        let w = pbx0.setup.dir.path().join(format!("wrap-{t}"));
        std::fs::write(
            &w,
            format!(
                "#!/bin/sh\necho {t} >> {}\nexec /usr/sbin/{t} \"$@\"\n",
                count.display()
            ),
        )
        .unwrap();
        must(&["chmod", "755", w.to_str().unwrap()]);
        let cfg = std::fs::read_to_string(&pbx0.setup.cfg).unwrap();
        let key = t.replace('-', "_");
        std::fs::write(&pbx0.setup.cfg, format!("{cfg}{key} = {}\n", w.display())).unwrap();
    }
    let pbx = pbx0;
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", ATK4)]) {
        pbx.send(&e);
    }
    for e in fixture_events("ipv6.ami", &[("2001:db8:99::2", ATK6)]) {
        pbx.send(&e);
    }
    wait_for(10, "two bans", || pbx.setup.stored().len() == 2);
    assert_eq!(d.stop(), 0);
    must(&[
        "iptables",
        "-w",
        "-A",
        "ampere",
        "-s",
        "198.51.100.99",
        "-j",
        "DROP",
    ]);
    must(&[
        "ip6tables",
        "-w",
        "-A",
        "ampere",
        "-s",
        "2001:db8:ffff::99",
        "-j",
        "DROP",
    ]);
    assert_eq!(rules("iptables"), [ATK4, "198.51.100.99"]);
    std::fs::write(&count, "").unwrap();
    let d = pbx.setup.spawn();
    pbx.logged_in(2);
    assert_eq!(rules("iptables"), [ATK4], "stray rule not flushed");
    assert_eq!(rules("ip6tables"), [ATK6], "stray rule not flushed");
    assert_eq!(
        std::fs::read_to_string(&count).unwrap(),
        "iptables-restore\nip6tables-restore\n",
        "one batch per family"
    );
    assert_eq!(d.stop(), 0);
}

/// Events from many attackers, each crossing the limit on its 15th.
fn attacker_stream(tx: mpsc::Sender<Vec<u8>>, stop: Arc<Mutex<bool>>) {
    let mut i: u32 = 0;
    while !*stop.lock().unwrap() {
        let n = i / 15;
        let addr = if n % 4 == 3 {
            format!("IPV6/TCP/2001:db8:bad::{:x}/5060", n + 1)
        } else {
            format!("IPV4/TCP/198.51.{}.{}/5060", 100 + n / 250, 1 + n % 250)
        };
        let ev = format!(
            "Event: ChallengeResponseFailed\r\nPrivilege: security,all\r\nSeverity: Error\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: 1001\r\nSessionID: s{i}\r\nLocalAddress: IPV4/UDP/{PBX4}/5060\r\nRemoteAddress: {addr}\r\nChallenge: x\r\nResponse: y\r\nExpectedResponse: \r\n\r\n"
        );
        if tx.send(ev.into_bytes()).is_err() {
            return;
        }
        i += 1;
        thread::sleep(Duration::from_micros(300));
    }
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see sigkill_at_random_moments_never_loses_or_duplicates_a_ban)"]
fn inner_crash() {
    if inside().is_none() {
        return;
    }
    let pbx = Pbx::new("");
    let stop = Arc::new(Mutex::new(false));
    let (tx, stop2) = (pbx.feed.clone(), stop.clone());
    let producer = thread::spawn(move || attacker_stream(tx, stop2));
    // A second config on the same database and chain whose AMI port is closed: it only
    // restores, so the chain can be compared with the database at rest.
    let check_cfg = pbx.setup.dir.path().join("check.cfg");
    let cfg = std::fs::read_to_string(&pbx.setup.cfg).unwrap();
    std::fs::write(&check_cfg, format!("{cfg}port = 1\n")).unwrap();
    let mut seed: u64 = u64::from(std::process::id()).wrapping_mul(6_364_136_223_846_793_005) | 1;
    let mut kills = 0;
    let mut max_bans = 0;
    for round in 0..20 {
        let mut d = pbx.setup.spawn();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let wait = 80 + (seed >> 33) % 320;
        thread::sleep(Duration::from_millis(wait));
        assert!(
            d.is_running(),
            "round {round}: ampere exited:\n{}",
            pbx.setup.log()
        );
        drop(d); // SIGKILL
        kills += 1;
        let mut check = ampere()
            .arg("-c")
            .arg(&check_cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(check.stderr.take().unwrap());
        let mut line = String::new();
        let mut said = String::new();
        loop {
            line.clear();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "round {round}: check instance died ({:?}); it said:\n{said}\nthe killed daemon's log:\n{}",
                check.wait(),
                pbx.setup.log()
            );
            said.push_str(&line);
            if line.contains("stored ban(s) restored") {
                break;
            }
        }
        let mut in_chain: Vec<String> = rules("iptables");
        in_chain.extend(rules("ip6tables"));
        let unique: BTreeSet<String> = in_chain.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            in_chain.len(),
            "round {round}: duplicate rules {in_chain:?}"
        );
        let stored: BTreeSet<String> = pbx.setup.stored().into_iter().collect();
        assert_eq!(unique, stored, "round {round}: chain and database differ");
        max_bans = max_bans.max(stored.len());
        must(&["kill", "-TERM", &check.id().to_string()]);
        assert!(
            check.wait().unwrap().success(),
            "round {round}: check instance failed"
        );
    }
    *stop.lock().unwrap() = true;
    producer.join().unwrap();
    assert_eq!(kills, 20);
    assert!(
        max_bans >= 10,
        "too few bans happened to prove anything: {max_bans}"
    );
    println!(
        "measured: {kills} SIGKILLs, up to {max_bans} bans, chain == database after every restart"
    );
    drop(pbx.server);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see admin_add_and_del_change_the_kernel_at_once)"]
fn inner_admin() {
    if inside().is_none() {
        return;
    }
    let pbx = Pbx::new("");
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let prober = Prober::start(&format!("{PBX4}:5060"));
    let (code, _, err) = pbx
        .setup
        .run(&["-a"], &format!("{ATK4}\n2001:db8:ffff::7\n"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(rules("iptables"), [ATK4]);
    assert_eq!(rules("ip6tables"), ["2001:db8:ffff::7"]);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        prober.answered_within(400),
        0,
        "-a did not cut the host at once"
    );
    let (code, _, err) = pbx.setup.run(&["-d"], &format!("{ATK4}\n"));
    assert_eq!(code, 0, "{err}");
    assert!(rules("iptables").is_empty());
    wait_for(5, "answers again after -d", || {
        prober.answered_within(200) > 0
    });
    // The daemon keeps working: an attack now is banned by it.
    for e in fixture_events("pjsip-svwar.ami", &[("203.0.113.2", ATK4)]) {
        pbx.send(&e);
    }
    wait_for(5, "the daemon's ban", || rules("iptables") == [ATK4]);
    assert_eq!(
        pbx.server.accepted(),
        1,
        "the daemon reconnected during -a/-d"
    );
    assert_eq!(d.stop(), 0);
}

#[test]
fn nft_durations_parse() {
    for (text, secs) in [
        ("940ms", 0.94),
        ("1s940ms", 1.94),
        ("1m2s", 62.0),
        ("2h", 7200.0),
    ] {
        assert!((nft_duration(text) - secs).abs() < 1e-9, "{text}");
    }
}

/// When the stored ban of `addr` ends (unix seconds).
fn stored_expiry(setup: &Setup, addr: &str) -> f64 {
    let s = ampere::store::Store::open(&setup.db).unwrap();
    let b = s.active().unwrap();
    let b = b.iter().find(|b| ampere::addr::net_text(&b.net) == addr);
    b.and_then(|b| b.expires).expect("a stored temporary ban") as f64
}

fn wall() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until the kernel no longer holds `addrs` and checks when that was against the
/// stored expiry: never before it (the product), and within a second of it plus what a
/// loaded machine adds to the test's own polling (the machine). Returns the lateness.
fn lifted_on_time(backend: &str, addrs: &[&str], expires: f64) -> f64 {
    wait_for(20, "expiry", || {
        addrs.iter().all(|a| !in_kernel(backend, a))
    });
    let late = wall() - expires;
    assert!(late >= -0.2, "lifted {:.2} s before its expiry", -late);
    assert!(late <= 1.0 + 3.0, "lifted {late:.2} s after its expiry");
    late
}

fn backend_scenario(backend: &str) {
    let pbx = Pbx::new(&format!(
        "backend = {backend}\nbantime = 2\nbantime_factor = 4\n"
    ));
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let p4 = Prober::start(&format!("{PBX4}:5060"));
    let p6 = Prober::start(&format!("[{PBX6}]:5060"));
    // Over TCP: strong evidence, which escalates (weak evidence is never counted).
    let attack = |pbx: &Pbx| {
        for e in fixture_events(
            "pjsip-svmap.ami",
            &[("UDP/203.0.113.2/", &format!("TCP/{ATK4}/"))],
        ) {
            pbx.send(&e);
        }
    };
    attack(&pbx);
    for e in fixture_events(
        "ipv6.ami",
        &[("UDP/2001:db8:99::2/", &format!("TCP/{ATK6}/"))],
    ) {
        pbx.send(&e);
    }
    wait_for(5, "both bans in the kernel", || {
        in_kernel(backend, ATK4) && in_kernel(backend, ATK6)
    });
    let expires = stored_expiry(&pbx.setup, ATK4).max(stored_expiry(&pbx.setup, ATK6));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(p4.answered_within(400), 0, "IPv4 attacker still answered");
    assert_eq!(p6.answered_within(400), 0, "IPv6 attacker still answered");

    // bantime 2 s: lifted by Ampere (and, for sets, the kernel) at its time.
    let first = lifted_on_time(backend, &[ATK4, ATK6], expires);
    wait_for(5, "answers again", || {
        p4.answered_within(200) > 0 && p6.answered_within(200) > 0
    });
    assert!(pbx.setup.stored().is_empty());
    wait_for(5, "the unban lines", || {
        pbx.setup
            .log()
            .contains(&format!("unban {ATK4}: ban expired"))
    });

    // The second ban of the same host lasts four times as long (8 s); a restart in the
    // middle keeps its remaining time.
    attack(&pbx);
    wait_for(5, "second ban", || in_kernel(backend, ATK4));
    let expires = stored_expiry(&pbx.setup, ATK4);
    // The log line follows the firewall command.
    wait_for(5, "the second ban's log line", || {
        pbx.setup.log().contains("ban #2 until")
    });
    assert_eq!(d.stop(), 0);
    assert!(
        in_kernel(backend, ATK4),
        "the ban did not outlive the daemon"
    );
    thread::sleep(Duration::from_millis(1000));
    let d = pbx.setup.spawn();
    pbx.logged_in(2);
    let left_stored = expires - wall();
    assert!(
        left_stored > 1.0,
        "the restart took until the ban's end: the machine is too slow for this test"
    );
    assert!(in_kernel(backend, ATK4), "the ban was not restored");
    if backend != "iptables" {
        let left = kernel_remaining(backend, ATK4);
        assert!(
            left <= left_stored + 1.0 && left >= left_stored - 1.0,
            "kernel keeps it {left}s, the database {left_stored:.1}s"
        );
    }
    let second = lifted_on_time(backend, &[ATK4], expires);
    assert_eq!(d.stop(), 0);
    println!("measured: {backend}: first ban lifted {first:.2} s after its expiry, second (restart in between) {second:.2} s after");
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_backend() {
    if inside().is_some() {
        backend_scenario(&backend());
    }
}

/// Asterisk drops an AMI client whose socket stays full for its `writetimeout` (100 ms): the
/// server here enforces that rule while it sends 50,000 events/s, 4 s long, with four bursts
/// of 250 attackers crossing the limit within a few milliseconds each (1,000 bans with the
/// real iptables, ipset or nft). Ampere must never be dropped and every attacker must end up
/// in the kernel.
fn slow_consumer(backend: &str) {
    const RATE: u64 = 50_000;
    const SECONDS: u64 = 4;
    const PER_BURST: u64 = 250;
    let mut events = Vec::new();
    let mut attackers = BTreeSet::new();
    for i in 0..RATE * SECONDS {
        if i % RATE == RATE / 2 {
            let b = i / RATE;
            for a in 0..PER_BURST {
                let addr = format!("172.16.{b}.{a}");
                for k in 0..3 {
                    let e = invalid_account_event(a * 3 + k, &format!("IPV4/TCP/{addr}/5060"));
                    events.push(e.into_bytes());
                }
                attackers.insert(addr);
            }
        }
        // background: distinct addresses, one wrong password each (below the limit)
        events.push(crf_event(i, &remote(i, false)).into_bytes());
    }
    setup_chain();
    let server = AmiServer::start(vec![Plan::Paced {
        events: Arc::new(events),
        per_sec: RATE,
        write_timeout: Duration::from_millis(100),
    }]);
    let setup = Setup::new(
        Some(server.addr),
        &format!("{REAL_TOOLS}backend = {backend}\n"),
    );
    let d = setup.spawn();
    wait_for(60, "the paced stream to end", || server.paced().is_some());
    let report = server.paced().unwrap();
    assert!(
        report.dropped.is_none(),
        "Asterisk would have dropped Ampere: {} (longest stall before: {:?})\n{}",
        report.dropped.unwrap(),
        report.max_stall,
        setup.log()
    );
    wait_for(30, "every attacker in the kernel", || {
        kernel_bans(backend).len() >= attackers.len()
    });
    assert_eq!(kernel_bans(backend), attackers);
    assert_eq!(
        setup.stored().into_iter().collect::<BTreeSet<_>>(),
        attackers
    );
    println!(
        "measured: {backend}: {} events in {:?} ({:.0}/s), {} bans; longest wait for Ampere to read: {:?} (limit 100 ms)",
        report.sent,
        report.elapsed,
        report.sent as f64 / report.elapsed.as_secs_f64(),
        attackers.len(),
        report.max_stall
    );
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_slow_consumer() {
    if inside().is_some() {
        slow_consumer(&backend());
    }
}

// ---------------------------------------------------------------------------------------
// nft: timeouts past its ceiling, elements it refuses

#[test]
#[ignore = "helper: runs inside the pbx namespace (see nft_bans_beyond_its_timeout_ceiling_and_overlapping_ones_never_fail_a_start)"]
fn inner_nft_long_bans() {
    if inside().is_none() {
        return;
    }
    let pbx = Pbx::new("backend = nft\nbantime = 30d\nbantime_factor = 2\n");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = 86_400;
    {
        let mut s = ampere::store::Store::open(&pbx.setup.db).unwrap();
        let ban = |a: &str| {
            ampere::ban::BanRequest::new(
                ampere::addr::parse_net(a).unwrap(),
                ampere::ban::Origin::Daemon,
                "FailedACL",
                now,
                ampere::ban::Lifetime::Escalating,
            )
        };
        // The 7th ban of 30 d with factor 2 lasts 1,920 d, past nft's 99,999,999 s; a
        // network, and a network inside it that an interval set refuses next to it (a
        // host inside it goes in the hash set and is no overlap).
        let long = now + 1920 * day;
        s.record(&[ban(ATK4)], &|_, _| Some(long)).unwrap();
        s.record(&[ban("10.0.0.0/8")], &|_, _| None).unwrap();
        s.record(&[ban("10.1.0.0/16")], &|_, _| Some(now + day))
            .unwrap();
        s.record(&[ban("10.1.2.3")], &|_, _| Some(now + day))
            .unwrap();
        // ATK6 was banned six times before; its ban has ended.
        for _ in 0..6 {
            s.record(&[ban(ATK6)], &|_, _| Some(now - 1)).unwrap();
            s.expire_due(now, usize::MAX).unwrap();
        }
    }
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let log = pbx.setup.log();
    assert!(log.contains("stored ban(s) restored"), "{log}");
    assert!(
        in_kernel("nft", ATK4),
        "the long ban is in the kernel: {log}"
    );
    assert!(
        in_kernel("nft", "10.1.2.3"),
        "a host inside a network: {log}"
    );
    assert!(
        in_kernel("nft", "10.0.0.0/8"),
        "the network is in the kernel"
    );
    assert!(
        log.contains("10.1.0.0/16 not put back"),
        "the refused one is said: {log}"
    );
    // A 7th ban made by the daemon: 1,920 d again, applied without a kernel timeout.
    for e in fixture_events(
        "ipv6.ami",
        &[("UDP/2001:db8:99::2/", &format!("TCP/{ATK6}/"))],
    ) {
        pbx.send(&e);
    }
    wait_for(10, "the 7th ban", || in_kernel("nft", ATK6));
    // The log line follows the firewall command.
    wait_for(10, "its log line", || {
        pbx.setup.log().contains("ban #7 until")
    });
    let log = pbx.setup.log();
    assert!(log.contains(&format!("ban {ATK6}:")), "{log}");
    assert!(!log.contains("firewall failed"), "{log}");
    assert_eq!(d.stop(), 0);
}

// ---------------------------------------------------------------------------------------
// A batch that fails for one family

#[test]
#[ignore = "helper: runs inside the pbx namespace (see a_mixed_batch_with_the_ipv6_chain_gone_inserts_each_ipv4_rule_once)"]
fn inner_mixed_batch() {
    if inside().is_none() {
        return;
    }
    let pbx = Pbx::new("bantime = 2\n");
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    // Someone removes the IPv6 chain (its jumps first).
    let t = "ip6tables";
    let udp = ["-p", "udp", "-m", "multiport", "--dports", "5060,4569"];
    must(&[&[t, "-w", "-D", "INPUT"][..], &udp, &["-j", "ampere"]].concat());
    let tcp = ["-p", "tcp", "-m", "multiport", "--dports", "5060,5061"];
    must(&[&[t, "-w", "-D", "INPUT"][..], &tcp, &["-j", "ampere"]].concat());
    must(&[t, "-w", "-F", "ampere"]);
    must(&[t, "-w", "-X", "ampere"]);
    // Two IPv4 and one IPv6 attacker cross the limit in one read: one mixed batch.
    let mut burst = Vec::new();
    for (i, a) in ["192.0.2.71", "192.0.2.72"].iter().enumerate() {
        for k in 0..3 {
            burst.extend(
                invalid_account_event(i as u64 * 3 + k, &format!("IPV4/TCP/{a}/5060")).into_bytes(),
            );
        }
    }
    for k in 0..3 {
        burst.extend(invalid_account_event(10 + k, "IPV6/TCP/2001:db8:a3e::71/5060").into_bytes());
    }
    pbx.send(&burst);
    wait_for(10, "the IPv6 failure", || {
        pbx.setup
            .log()
            .contains("ban 2001:db8:a3e::71 recorded, but the firewall failed")
    });
    let mut v4 = rules("iptables");
    v4.sort();
    assert_eq!(
        v4,
        ["192.0.2.71", "192.0.2.72"],
        "each IPv4 rule exactly once"
    );
    // Expiry lifts them: nothing of them outlives the ban.
    wait_for(10, "expiry", || rules("iptables").is_empty());
    assert_eq!(d.stop(), 0);
}

// ---------------------------------------------------------------------------------------
// The AMI host by name

#[test]
#[ignore = "helper: runs inside the pbx namespace (see the_ami_host_named_in_the_config_is_never_banned_even_if_it_resolved_late)"]
fn inner_ami_host_by_name() {
    if inside().is_none() {
        return;
    }
    setup_chain();
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start_on(
        &format!("{PBX4}:0"),
        vec![Plan::Feed(Arc::new(Mutex::new(rx)))],
        Duration::ZERO,
    );
    let setup = Setup::new(Some(server.addr), &format!("{REAL_TOOLS}host = ami.test\n"));
    let d = setup.spawn();
    wait_for(10, "a failed lookup", || {
        setup.log().contains("cannot resolve AMI host ami.test")
    });
    std::fs::write(
        "/etc/hosts",
        format!("127.0.0.1 localhost\n{PBX4} ami.test\n"),
    )
    .unwrap();
    wait_for(10, "the login", || setup.log().contains("logged in to AMI"));
    // Failures from the AMI host's own address (a PBX that is its own SIP client), and
    // from an attacker.
    for e in fixture_events("pjsip-wrong-password.ami", &[("10.99.1.2", PBX4)]) {
        tx.send(e).unwrap();
    }
    for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", ATK4)]) {
        tx.send(e).unwrap();
    }
    wait_for(10, "the attacker's ban", || {
        rules("iptables").contains(&ATK4.to_string())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rules("iptables"),
        [ATK4],
        "the AMI host was banned:\n{}",
        setup.log()
    );
    assert_eq!(setup.stored(), [ATK4]);
    assert_eq!(d.stop(), 0);
}

// ---------------------------------------------------------------------------------------
// Repair while running

fn repair_scenario(backend: &str) {
    let pbx = Pbx::new(&format!("backend = {backend}\naudit_interval = 1h\n"));
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let attack = |pbx: &Pbx| {
        for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", ATK4)]) {
            pbx.send(&e);
        }
    };
    attack(&pbx);
    wait_for(5, "the ban", || in_kernel(backend, ATK4));
    // `why` asks the real kernel: held, then not.
    let why = || pbx.setup.run(&["why", ATK4], "").1;
    let out = why();
    assert!(out.contains(&format!("kernel: drops it ({ATK4})")), "{out}");
    // The kernel forgets the ban and the attacker's guesses reach Asterisk again: the first
    // event from it puts the ban back, long before any audit (an hour). The events Asterisk
    // had queued at the ban are not re-applied for a second (REAPPLY_EVERY): wait that out.
    std::thread::sleep(Duration::from_millis(1200));
    empty_firewall(backend);
    assert!(!in_kernel(backend, ATK4));
    let out = why();
    assert!(
        out.contains(&format!("kernel: does NOT hold the ban of {ATK4}")),
        "{out}"
    );
    let emptied = Instant::now();
    attack(&pbx);
    wait_for(5, "the ban put back on the attacker's next event", || {
        in_kernel(backend, ATK4)
    });
    println!(
        "measured: {backend}: ban back {:.3} s after the firewall lost it and the attacker came back",
        emptied.elapsed().as_secs_f64()
    );
    // The ban vanishes from the kernel: the audit finds it (audit_interval now 2 s, on SIGHUP).
    let cfg = std::fs::read_to_string(&pbx.setup.cfg).unwrap();
    std::fs::write(
        &pbx.setup.cfg,
        cfg.replace("audit_interval = 1h", "audit_interval = 2"),
    )
    .unwrap();
    d.signal("HUP");
    wait_for(5, "the reload", || {
        pbx.setup.log().contains("config reloaded")
    });
    break_firewall(backend);
    let broken = Instant::now();
    wait_for(10, "the audit's repair", || in_kernel(backend, ATK4));
    println!(
        "measured: {backend}: repaired {:.1} s after the firewall lost the ban",
        broken.elapsed().as_secs_f64()
    );
    // The log line follows the repair: the kernel may show it first.
    wait_for(5, "the audit's log line", || {
        pbx.setup.log().contains("audit: ")
    });
    assert_eq!(pbx.setup.stored(), [ATK4]);
    // An admin's `-a` through the daemon while the firewall is broken: it is made again, as
    // `ampere -a` alone makes it.
    break_firewall(backend);
    let (code, _, err) = pbx.setup.run(&["-a"], "192.0.2.77\n");
    assert_eq!(code, 0, "{err}\n{}", pbx.setup.log());
    assert!(err.contains("by the running daemon"), "{err}");
    assert!(in_kernel(backend, "192.0.2.77"));
    wait_for(10, "the audit's repair of the rest", || {
        in_kernel(backend, ATK4)
    });
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_repair() {
    if inside().is_some() {
        repair_scenario(&backend());
    }
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see the_audit_reads_reject_rules_and_never_doubles_them)"]
fn inner_audit_reject() {
    if inside().is_none() {
        return;
    }
    // iptables prints a REJECT rule with its options (`--reject-with …`): the audit must
    // still see the ban there, not put it in again every time.
    let pbx = Pbx::new("target = REJECT\naudit_interval = 1\n");
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", ATK4)]) {
        pbx.send(&e);
    }
    wait_for(5, "the ban", || {
        rules("iptables").contains(&ATK4.to_string())
    });
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(rules("iptables"), [ATK4], "{}", pbx.setup.log());
    assert!(
        !pbx.setup.log().contains("audit: ban"),
        "{}",
        pbx.setup.log()
    );
    assert_eq!(d.stop(), 0);
}

// ---------------------------------------------------------------------------------------
// A database that refuses writes

#[test]
fn a_full_disk_or_a_deleted_database_never_costs_a_ban() {
    for backend in BACKENDS {
        TestNet::create().run_backend("inner_db_fault", backend);
    }
}

/// A small tmpfs mounted for the test; unmounted on drop (also after a panic), before the
/// temp dir it lives in is removed. The mount is private to this helper's namespaces.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        must(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            at.to_str().unwrap(),
        ]);
        Tmpfs(at)
    }

    /// Writes zeros until the file system is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let page = [0u8; 4096];
        while f.write_all(&page).and_then(|()| f.flush()).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = sh(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

fn db_fault_scenario(backend: &str) {
    let probe = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(probe.path().join("disk"), "512k");
    let dbdir = disk.0.join("ampere");
    let db = dbdir.join("ampere.db");
    let pbx = Pbx::new(&format!(
        "backend = {backend}\nbantime = 1h\naudit_interval = 2\ndb = {}\n",
        db.display()
    ));
    let stored = || stored_in(&db);
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let attack = |addr: &str| {
        for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", addr)]) {
            pbx.send(&e);
        }
    };
    // The disk fills up: every ban still reaches the kernel at once.
    disk.fill();
    let full: Vec<String> = (10..30).map(|i| format!("198.51.100.{i}")).collect();
    for a in &full {
        attack(a);
        wait_for(10, "a ban on a full disk", || in_kernel(backend, a));
    }
    d.signal("USR1");
    wait_for(5, "the stats line", || pbx.setup.log().contains("stats: "));
    // An audit meanwhile (every 2 s) keeps them.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        full.iter().all(|a| in_kernel(backend, a)),
        "{}",
        pbx.setup.log()
    );
    // Space again: written by the loop's retry (backing off up to a minute).
    disk.free();
    let freed = Instant::now();
    let mut want = full.clone();
    want.sort();
    wait_for(70, "the bans written to the database", || stored() == want);
    println!(
        "measured: {backend}: stored {:.1} s after the disk had space again",
        freed.elapsed().as_secs_f64()
    );
    let log = pbx.setup.log();
    assert!(
        !log.contains("waiting for the database 0;"),
        "bans waited for the database:\n{log}"
    );
    assert_eq!(
        log.matches("bans go on in the kernel").count(),
        1,
        "one loud error per outage:\n{log}"
    );
    assert!(log.contains("takes writes again"), "{log}");
    // The database's directory is deleted: the next ban makes it again, and the audit
    // adopts what the kernel holds instead of removing it.
    std::fs::remove_dir_all(&dbdir).unwrap();
    attack("198.51.100.99");
    wait_for(10, "a ban after the database was deleted", || {
        in_kernel(backend, "198.51.100.99")
    });
    want.push("198.51.100.99".to_string());
    want.sort();
    wait_for(10, "the bans adopted into the new database", || {
        db.exists() && stored() == want
    });
    assert!(
        full.iter().all(|a| in_kernel(backend, a)),
        "{}",
        pbx.setup.log()
    );
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_db_fault() {
    if inside().is_some() {
        db_fault_scenario(&backend());
    }
}
