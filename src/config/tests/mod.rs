use std::path::PathBuf;

use ipnet::IpNet;

use super::*;

mod names;
use crate::score::{EventKind, Weight};

fn ok(text: &str) -> Loaded {
    parse(text.as_bytes(), "t.cfg").unwrap_or_else(|e| panic!("{e}"))
}

fn bad(text: &str) -> ConfigError {
    match parse(text.as_bytes(), "t.cfg") {
        Ok(_) => panic!("accepted: {text:?}"),
        Err(e) => e,
    }
}

#[test]
fn original_sample_files_load_unchanged() {
    // The two sample configs shipped with the original C Ampere.
    let a = ok("pass = 123\nloyalty = 4\nchain = ampere-firewall\n");
    assert_eq!(a.config.pass, "123");
    assert_eq!(a.config.loyalty, 4);
    assert_eq!(a.config.chain, "ampere-firewall");
    assert!(a.warnings.is_empty());
    let b = ok("trust = 192.168.0.0/24\ntrust = 10.10.32.0/19\n");
    assert_eq!(
        b.config.trust,
        vec![
            "192.168.0.0/24".parse::<IpNet>().unwrap(),
            "10.10.32.0/19".parse::<IpNet>().unwrap()
        ]
    );
}

#[test]
fn defaults() {
    let c = ok("").config;
    assert_eq!(c.host, "127.0.0.1");
    assert_eq!(c.port, 5038);
    assert_eq!(c.user, "ampere");
    assert_eq!(c.pass, "ampere");
    assert_eq!(c.loyalty, 3);
    assert_eq!(c.limit(), 15);
    assert_eq!(c.chain, "ampere");
    assert!(c.trust.is_empty());
    assert_eq!(c.db, PathBuf::from("/var/lib/ampere/ampere.db"));
    assert_eq!(c.target, RuleTarget::Drop);
}

#[test]
fn every_key() {
    let text = "\
host = ::1
port = 5039
user = guard
pass = s3cret
loyalty = 5
chain = pbx_ban
trust = 2001:db8::/32
trust = 192.0.2.7
db = /tmp/a.db
iptables = /sbin/iptables
ip6tables = /sbin/ip6tables
iptables_restore = /sbin/iptables-restore
ip6tables_restore = /sbin/ip6tables-restore
target = reject
ipv6 = no
log = syslog
services = PJSIP, IAX2
findtime = 10m
table_size = 65536
connect_timeout = 2s
ping_interval = 1m
ping_timeout = 3
reconnect_min = 2
reconnect_max = 1h
weight.InvalidAccountID = 7
weight.challengesent = 3/9
weight.SuccessfulAuth = 0
backend = nft
ipset = /sbin/ipset
nft = /sbin/nft
maxelem = 200000
ports = 5060 5061, 4569
bantime = 1h
bantime_factor = 1.5
bantime_max = 7d
permanent_after = 5
onban = /usr/local/bin/notify-ban
onunban = /usr/local/bin/notify-unban
hook_timeout = 10
statsfile = /run/ampere.prom
stats_interval = 2m
";
    let c = ok(text).config;
    assert_eq!(c.host, "::1");
    assert_eq!(c.port, 5039);
    assert_eq!(c.user, "guard");
    assert_eq!(c.pass, "s3cret");
    assert_eq!(c.loyalty, 5);
    assert_eq!(c.chain, "pbx_ban");
    assert_eq!(c.trust.len(), 2);
    assert_eq!(c.trust[1], "192.0.2.7/32".parse::<IpNet>().unwrap());
    assert_eq!(c.db, PathBuf::from("/tmp/a.db"));
    assert_eq!(c.iptables, PathBuf::from("/sbin/iptables"));
    assert_eq!(c.ip6tables, PathBuf::from("/sbin/ip6tables"));
    assert_eq!(c.iptables_restore, PathBuf::from("/sbin/iptables-restore"));
    assert_eq!(
        c.ip6tables_restore,
        PathBuf::from("/sbin/ip6tables-restore")
    );
    assert_eq!(c.target, RuleTarget::Reject);
    assert!(!c.ipv6);
    assert_eq!(c.log, Some(log::Target::Syslog));
    assert_eq!(c.services, vec!["PJSIP", "IAX2"]);
    assert_eq!(c.findtime, 600);
    assert_eq!(c.table_size, 65536);
    assert_eq!(c.connect_timeout, 2);
    assert_eq!(c.ping_interval, 60);
    assert_eq!(c.ping_timeout, 3);
    assert_eq!(c.reconnect_min, 2);
    assert_eq!(c.reconnect_max, 3600);
    let w = |k| c.weights.get(k);
    assert_eq!(
        w(EventKind::InvalidAccountID),
        Weight::Add { base: 7, bump: 7 }
    );
    assert_eq!(
        w(EventKind::ChallengeSent),
        Weight::Add { base: 3, bump: 9 }
    );
    assert_eq!(
        w(EventKind::SuccessfulAuth),
        Weight::Add { base: 0, bump: 0 }
    );
    assert_eq!(c.backend, BackendKind::Nft);
    assert_eq!(c.ipset, PathBuf::from("/sbin/ipset"));
    assert_eq!(c.nft, PathBuf::from("/sbin/nft"));
    assert_eq!(c.maxelem, 200_000);
    assert_eq!(c.ports, vec![5060, 5061, 4569]);
    assert_eq!(c.bantime, 3600);
    assert_eq!(c.bantime_factor, 1.5);
    assert_eq!(c.bantime_max, 7 * 86_400);
    assert_eq!(c.permanent_after, 5);
    assert_eq!(c.onban, Some(PathBuf::from("/usr/local/bin/notify-ban")));
    assert_eq!(
        c.onunban,
        Some(PathBuf::from("/usr/local/bin/notify-unban"))
    );
    assert_eq!(c.hook_timeout, 10);
    assert_eq!(c.statsfile, Some(PathBuf::from("/run/ampere.prom")));
    assert_eq!(c.stats_interval, 120);
}

#[test]
fn escalation() {
    let c = ok("bantime = 1h\nbantime_factor = 2\nbantime_max = 1d\npermanent_after = 6\n").config;
    let h = 3600;
    assert_eq!(c.ban_expiry(1000, 1), Some(1000 + h));
    assert_eq!(c.ban_expiry(1000, 2), Some(1000 + 2 * h));
    assert_eq!(c.ban_expiry(1000, 3), Some(1000 + 4 * h));
    assert_eq!(c.ban_expiry(1000, 5), Some(1000 + 16 * h));
    assert_eq!(c.ban_expiry(1000, 5), Some(1000 + 16 * h));
    let capped = ok("bantime = 1h\nbantime_max = 5h\n").config;
    assert_eq!(capped.ban_expiry(0, 4), Some(5 * h));
    assert_eq!(capped.ban_expiry(0, 999), Some(5 * h));
    assert_eq!(c.ban_expiry(1000, 6), None, "permanent_after");
    assert_eq!(
        ok("").config.ban_expiry(1000, 1),
        None,
        "bantime 0 = permanent"
    );
    let huge = ok("bantime = 3650d\nbantime_factor = 100\n").config;
    assert!(huge.ban_expiry(0, 50).unwrap() <= 10 * 365 * 86_400);
}

#[test]
fn comments_blank_lines_whitespace_crlf_bom() {
    let text = "\u{feff}# comment\r\n; another\r\n\r\n   \t\r\n  pass   =   abc#1  # trailing\r\nloyalty=6 ; trailing\r\nuser = \"a b ; c\" # q\r\n";
    let c = ok(text).config;
    assert_eq!(c.pass, "abc#1");
    assert_eq!(c.loyalty, 6);
    assert_eq!(c.user, "a b ; c");
}

#[test]
fn ipv6_trust_networks_and_no_limit_of_16() {
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!("trust = fd00:{i:x}::/48\n"));
    }
    text.push_str("trust = ::1\ntrust = 2001:db8:1:2::5/64\n");
    let c = ok(&text).config;
    assert_eq!(c.trust.len(), 42);
    assert_eq!(c.trust[40], "::1/128".parse::<IpNet>().unwrap());
    // host bits are cleared
    assert_eq!(c.trust[41], "2001:db8:1:2::/64".parse::<IpNet>().unwrap());
}

#[test]
fn unknown_key_is_a_warning_with_line() {
    let l = ok("pass = 1\n\nfrobnicate = 3\n");
    assert_eq!(
        l.warnings,
        vec!["t.cfg:3: unknown key `frobnicate` (ignored)"]
    );
    // A typo gets the key it is nearest to.
    let l = ok("loyality = 3\nbantim = 1h\nPING_INTERVL = 5\n");
    assert_eq!(
        l.warnings,
        vec![
            "t.cfg:1: unknown key `loyality` (ignored); did you mean `loyalty`?",
            "t.cfg:2: unknown key `bantim` (ignored); did you mean `bantime`?",
            "t.cfg:3: unknown key `PING_INTERVL` (ignored); did you mean `ping_interval`?",
        ]
    );
}

#[test]
fn errors_name_line_and_text() {
    let cases: &[(&str, usize, &str)] = &[
        ("pass = 1\ntrust = 10.0.0.0/33\n", 2, "10.0.0.0/33"),
        ("trust = 192.168.1\n", 1, "192.168.1"),
        ("\n\ntrust = fe80::zz/64\n", 3, "fe80::zz/64"),
        ("loyalty = 0\n", 1, "`0`"),
        ("loyalty = lots\n", 1, "lots"),
        ("port = 70000\n", 1, "70000"),
        ("just some words\n", 1, "just some words"),
        ("= 5\n", 1, "= 5"),
        ("pass =\n", 1, "no value"),
        ("pass = # only a comment\n", 1, "no value"),
        ("user = \"open\n", 1, "unterminated"),
        ("user = \"a\" b\n", 1, "after the closing quote"),
        ("chain = -j ACCEPT\n", 1, "-j ACCEPT"),
        ("chain = a_chain_name_that_is_far_too_long\n", 1, "too_long"),
        ("target = ACCEPT\n", 1, "ACCEPT"),
        ("ipv6 = maybe\n", 1, "maybe"),
        ("iptables = iptables\n", 1, "absolute path"),
        ("findtime = 5x\n", 1, "5x"),
        ("table_size = 4\n", 1, "`4`"),
        ("services = ,\n", 1, "at least one"),
        ("weight.Nonsense = 1\n", 1, "Nonsense"),
        ("weight.ChallengeSent = -4\n", 1, "-4"),
        ("reconnect_min = 60\n", 1, "reconnect_min"),
        ("backend = pf\n", 1, "pf"),
        ("bantime_factor = 0.5\n", 1, "0.5"),
        ("ports = 5060,x\n", 1, "`x`"),
        ("onban = notify.sh\n", 1, "absolute path"),
        ("maxelem = 10\n", 1, "`10`"),
    ];
    for &(text, line, needle) in cases {
        let e = bad(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
        assert!(e.to_string().starts_with(&format!("t.cfg:{line}: ")), "{e}");
    }
}

#[test]
fn invalid_utf8_is_an_error_with_line() {
    let e = parse(b"pass = 1\nuser = \xff\xfe\n", "t.cfg").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.msg.contains("\\xff"), "{e}");
}

#[test]
fn missing_file_explicit_vs_default() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.cfg");
    let e = load(&missing, true).err().unwrap();
    assert!(e.to_string().contains("nope.cfg"), "{e}");
    let l = load(&missing, false).unwrap();
    assert_eq!(l.config, Config::default());
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].contains("defaults"));
}

#[test]
fn describe_masks_password() {
    let c = ok("pass = hunter2\n").config;
    let d = c.describe();
    assert!(!d.contains("hunter2"));
    assert!(d.contains("pass               = ********"));
    assert!(d.contains("weight.ChallengeSent = 4/10"));
}

#[test]
fn keys_that_compare_are_checked_after_the_whole_file() {
    // Either order loads: the check runs once every line is read.
    for text in [
        "reconnect_min = 60\nreconnect_max = 120\n",
        "reconnect_max = 120\nreconnect_min = 60\n",
    ] {
        let c = ok(text).config;
        assert_eq!((c.reconnect_min, c.reconnect_max), (60, 120), "{text:?}");
    }
    // Still an error when the pair is wrong, naming reconnect_min's line.
    let e = bad("reconnect_max = 10\n\nreconnect_min = 60\n");
    assert_eq!(e.line, 3, "{e}");
    assert!(
        e.msg
            .contains("reconnect_min (60) is above reconnect_max (10)"),
        "{e}"
    );
}

#[test]
fn every_key_in_the_table_parses_its_default_and_its_example() {
    for k in all_keys() {
        let mut c = Config::default();
        if !k.default.is_empty() {
            (k.set)(&mut c, k.name, k.default).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        }
        let (name, value) = match k.example.split_once(" = ") {
            Some((n, v)) => (n.to_ascii_lowercase(), v),
            None => (k.name.to_string(), k.example),
        };
        assert!(k.matches(&name), "{}: example key {name}", k.name);
        let before = k.values(&c);
        (k.set)(&mut c, &name, value).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        assert_ne!(
            k.values(&c),
            before,
            "{}: the example must differ from the default",
            k.name
        );
        // What -t shows loads again as the same value.
        let mut again = Config::default();
        for (n, v) in k.values(&c) {
            (k.set)(&mut again, &n.to_ascii_lowercase(), &v).unwrap();
        }
        assert_eq!(k.values(&again), k.values(&c), "{}", k.name);
    }
}

/// The example line of `k` as a config file would have it.
fn example_line(k: &Key) -> String {
    if k.example.contains(" = ") {
        format!("{}\n", k.example)
    } else {
        format!("{} = {}\n", k.name, k.example)
    }
}

#[test]
fn a_reload_keeps_every_restart_only_key_and_names_it() {
    let old = Config::default();
    let restart: Vec<&Key> = all_keys().filter(|k| k.effect == Effect::Restart).collect();
    for name in [
        "db",
        "chain",
        "iptables",
        "ip6tables",
        "iptables_restore",
        "ip6tables_restore",
        "target",
        "ipv6",
        "table_size",
        "backend",
        "ipset",
        "nft",
        "maxelem",
        "ports",
    ] {
        assert!(
            restart.iter().any(|k| k.name == name),
            "{name} must be restart-only"
        );
    }
    for k in restart {
        let mut new = ok(&example_line(k)).config;
        assert_ne!(k.values(&new), k.values(&old), "{}", k.name);
        let changes = old.reload_into(&mut new);
        assert_eq!(changes.kept, vec![k.name], "{}", k.name);
        assert!(
            changes.live.is_empty() && changes.reconnect.is_empty(),
            "{changes:?}"
        );
        assert_eq!(
            k.values(&new),
            k.values(&old),
            "{} kept at its running value",
            k.name
        );
    }
}

#[test]
fn a_reload_applies_live_keys_and_asks_for_a_new_login_for_ami_keys() {
    let old = Config::default();
    for k in all_keys().filter(|k| k.effect != Effect::Restart) {
        let mut new = ok(&example_line(k)).config;
        let wanted = k.values(&new);
        let changes = old.reload_into(&mut new);
        let list = match k.effect {
            Effect::Live => &changes.live,
            _ => &changes.reconnect,
        };
        assert_eq!(list, &vec![k.name], "{}: {changes:?}", k.name);
        assert_eq!(k.values(&new), wanted, "{}", k.name);
    }
    let mut same = ok("log = stderr\n").config;
    assert_eq!(old.reload_into(&mut same), Changes::default());
}

/// Key names a documentation file mentions, by its own conventions.
fn documented(file: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = Vec::new();
    if file.ends_with(".8") {
        // The CONFIGURATION section: each `.TP` is followed by a line naming its keys.
        let section = text
            .split(".SH CONFIGURATION")
            .nth(1)
            .and_then(|s| s.split("\n.SH ").next())
            .expect("a CONFIGURATION section");
        let lines: Vec<&str> = section.lines().collect();
        for w in lines.windows(2).filter(|w| w[0] == ".TP") {
            let head = w[1].trim_start_matches(".BR ").trim_start_matches(".BI ");
            let head = head.trim_start_matches(".B ");
            for word in head.split('"').step_by(2) {
                let word = word.trim();
                if word == "weight. Event" {
                    out.push("weight.*".to_string());
                } else if !word.is_empty() {
                    out.push(word.to_string());
                }
            }
        }
    } else {
        // Config files: `# key = value` (commented default) or `key = value` lines.
        for line in text.lines() {
            let body = line.trim_start_matches('#').trim_start();
            let Some((key, _)) = body.split_once(" = ") else {
                continue;
            };
            if !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                let key = key.to_ascii_lowercase();
                out.push(if key.starts_with("weight.") {
                    "weight.*".into()
                } else {
                    key
                });
            }
        }
    }
    out
}

#[test]
fn the_documentation_names_every_key_and_no_other() {
    for file in ["etc/ampere.cfg", "cross/openwrt/ampere.cfg", "doc/ampere.8"] {
        let names = documented(file);
        for k in all_keys() {
            assert!(
                names.iter().any(|n| n == k.name),
                "{file} does not document `{}`",
                k.name
            );
        }
        for n in &names {
            assert!(
                keys::find(n.trim_end_matches('*')).is_some() || n == "weight.*",
                "{file} documents unknown key `{n}`"
            );
        }
    }
}

#[test]
fn an_endless_or_huge_file_is_refused_without_echoing_it() {
    let e = load(std::path::Path::new("/dev/zero"), true).err().unwrap();
    assert!(e.to_string().contains("larger than 1024 KiB"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.cfg");
    std::fs::write(&big, format!("pass = 1\nuser = {}\n", "a".repeat(10 << 20))).unwrap();
    let e = load(&big, true).err().unwrap();
    assert!(
        e.to_string().len() < 200,
        "the error echoes the file: {} bytes",
        e.to_string().len()
    );
    let long = dir.path().join("long.cfg");
    std::fs::write(&long, format!("pass = 1\nuser = {}\n", "a".repeat(5000))).unwrap();
    let e = load(&long, true).err().unwrap();
    assert_eq!(e.line, 2, "{e}");
    assert!(
        e.to_string().contains("line longer than 4096 bytes") && e.to_string().len() < 200,
        "{e}"
    );
}
