//! An nftables table of Ampere's own (`inet <chain>`): sets with per-element timeouts and a
//! chain hooked into input that drops what they hold on the configured ports. Restores are
//! one `nft -f -` transaction that replaces the whole table.
//!
//! Single addresses go in plain hash sets (`v4`, `v6`), networks in interval sets (`net4`,
//! `net6`): the nft client reads a whole interval set before every change to it (one ban
//! took 1.7 s with 100,000 addresses in place) and refused concurrent changes with
//! "interval overlaps with an existing one"; a hash set costs the same at any size. A hash
//! set matches only exact keys, so networks must stay in an interval set.

mod cli;
mod shape;

use std::cell::RefCell;
use std::path::PathBuf;

use ipnet::IpNet;

use super::{
    held, ipv6_disabled, output, run, run_fed, Backend, Entry, ErrorKind, FwError, Result,
    SipLimit, Source, Started,
};
use crate::addr::{is_host, is_v6, net_text};
use crate::config::{Config, RuleTarget};

/// The address sets' garbage collection: once an hour, not the kernel's default of once a
/// second. The kernel walks every element of a set at each collection: with a million in
/// place that took 6 % of a core, and the bans that met a walk waited for it (measured
/// through `nft -i` in a namespace: adds p99 6.57 ms at once a second, 1.01 ms at once an
/// hour). Ampere lifts its bans at their end itself, and an expired element neither matches
/// nor stops the same address from being added again, so nothing waits for the collection
/// but the memory of what the kernel timed out first. The interval sets keep the default:
/// they hold few networks, and an old kernel's overlap check could trip on an expired one.
const ADDRESS_GC: &str = "gc-interval 1h; ";

/// Removing more elements than this at once looks at the sets first (`remove_listed`).
const REBUILD_ABOVE: usize = 64;

/// Elements per `add element` line of a restore.
const PER_LINE: usize = 4096;

/// The sets, each with its family (true: IPv6) and whether it holds networks.
const SETS: [(&str, bool, bool); 4] = [
    ("v4", false, false),
    ("net4", false, true),
    ("v6", true, false),
    ("net6", true, true),
];

/// Whether `nft list chains inet` shows `table` with its input chain.
fn has_input_chain(listing: &str, table: &str) -> bool {
    let head = format!("table inet {table} {{");
    let mut lines = listing.lines();
    // The table's own closing brace is the only one not indented.
    lines.any(|l| l.trim() == head)
        && lines
            .take_while(|l| *l != "}")
            .any(|l| l.trim() == "chain input {")
}

/// Seconds of an nft duration such as `29d23h59m59s996ms` (rounded up).
fn nft_seconds(v: &str) -> Option<u64> {
    let (mut total_ms, mut num) = (0u64, String::new());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(unit)?)?;
    }
    num.is_empty().then(|| total_ms.div_ceil(1000))
}

/// The longest per-element timeout nft accepts, in seconds.
const MAX_TIMEOUT: u64 = 99_999_999;

pub struct Nft {
    nft: PathBuf,
    table: String,
    ports: String,
    verdict: &'static str,
    ipv6: bool,
    /// The SIP limit in the `guard` chain, kept when the table is made again.
    limit: RefCell<Option<SipLimit>>,
    /// The table without its elements as nft prints what Ampere wrote (`shape.rs`): what
    /// the audit compares with.
    shape: RefCell<Option<String>>,
    /// The `nft -i` child of the daemon (`cli.rs`), unless `nft_interactive = no`.
    cli: cli::Cli,
    interactive: bool,
}

impl Nft {
    pub fn new(c: &Config) -> Nft {
        let ports: Vec<String> = c.ports.iter().map(u16::to_string).collect();
        Nft {
            nft: c.nft.clone(),
            table: c.chain.clone(),
            ports: ports.join(", "),
            verdict: match c.target {
                RuleTarget::Drop => "drop",
                RuleTarget::Reject => "reject",
            },
            ipv6: c.ipv6,
            limit: RefCell::new(None),
            shape: RefCell::new(None),
            cli: cli::Cli::new(),
            interactive: c.nft_interactive,
        }
    }

    /// The limit's statements, both families (IPv6 only with `ipv6`).
    fn limit_rules(&self, limit: &SipLimit) -> Vec<String> {
        let mut rules = limit.nft_rules(false, &self.ports);
        if self.ipv6 {
            rules.extend(limit.nft_rules(true, &self.ports));
        }
        rules
    }

    /// The table with its sets empty (a restore adds the elements after it).
    fn table_def(&self) -> String {
        self.table_def_named(&self.table, false)
    }

    /// The table as `table_def` makes it, under `name`; `dormant`: its chains hooked
    /// nowhere (the scratch copy `shape.rs` lists).
    fn table_def_named(&self, name: &str, dormant: bool) -> String {
        let mut sets = String::new();
        for (name, v6, net) in SETS {
            sets.push_str(&format!(
                "  set {name} {{ type {}; flags {}timeout; {}}}\n",
                if v6 { "ipv6_addr" } else { "ipv4_addr" },
                if net { "interval," } else { "" },
                if net { "" } else { ADDRESS_GC },
            ));
        }
        let mut drops = String::new();
        for (name, v6, _) in SETS {
            drops.push_str(&format!(
                "    meta l4proto {{ tcp, udp }} th dport {{ {p} }} {} saddr @{name} {v}\n",
                if v6 { "ip6" } else { "ip" },
                p = self.ports,
                v = self.verdict
            ));
        }
        let limit: String = match &*self.limit.borrow() {
            Some(l) => self
                .limit_rules(l)
                .iter()
                .map(|r| format!("    {r}\n"))
                .collect(),
            None => String::new(),
        };
        format!(
            "table inet {name} {{\n{flags}{sets}  set guard4 {{ type ipv4_addr; size 65535; flags dynamic,timeout; timeout 1m; }}\n  set guard6 {{ type ipv6_addr; size 65535; flags dynamic,timeout; timeout 1m; }}\n  chain guard {{\n{limit}  }}\n  chain input {{\n    type filter hook input priority -10; policy accept;\n    jump guard\n{drops}  }}\n}}\n",
            flags = if dormant { "  flags dormant;\n" } else { "" },
        )
    }

    /// An element with its kernel timeout. nft refuses timeouts of 100,000,000 s or more
    /// ("value too large"): a longer ban goes in without one, and Ampere lifts it at its
    /// expiry, as with ipset.
    fn element(e: &Entry, now: i64) -> String {
        match e.timeout(now) {
            Some(t) if t <= MAX_TIMEOUT => format!("{} timeout {}s", net_text(&e.net), t.max(1)),
            _ => net_text(&e.net),
        }
    }

    fn set_for(&self, net: &IpNet) -> Result<&'static str> {
        match (net, is_host(net)) {
            (IpNet::V4(_), true) => Ok("v4"),
            (IpNet::V4(_), false) => Ok("net4"),
            (IpNet::V6(_), _) if !self.ipv6 => Err(ipv6_disabled(net)),
            (IpNet::V6(_), true) => Ok("v6"),
            (IpNet::V6(_), false) => Ok("net6"),
        }
    }

    /// The sets in use: the IPv6 ones only with `ipv6`.
    fn sets(&self) -> impl Iterator<Item = (&'static str, bool)> + '_ {
        SETS.into_iter()
            .filter(|(_, v6, _)| self.ipv6 || !v6)
            .map(|(name, _, net)| (name, net))
    }

    /// The elements of every set with the seconds they have left (None = no timeout).
    fn elements(&self) -> Result<Vec<(IpNet, Option<u64>)>> {
        let mut out = Vec::new();
        for (set, _) in self.sets() {
            self.elements_of(set, &mut out)?;
        }
        Ok(out)
    }

    /// The elements of `set` with the seconds they have left, added to `out`.
    fn elements_of(&self, set: &str, out: &mut Vec<(IpNet, Option<u64>)>) -> Result<()> {
        let text = output(&self.nft, &["list", "set", "inet", &self.table, set])?;
        // `elements = { 10.0.0.1 timeout 30d expires 29d…, 10.2.0.0/16 }`, maybe over
        // several lines: read as in a listing of the whole table.
        for (_, body) in shape::split_listing(&text).1 {
            shape::parse_elements(&body, out);
        }
        Ok(())
    }

    /// Removes `nets` in one transaction, whatever the sets still hold (a `delete element`
    /// of one that is gone, its timeout run out, fails the whole transaction). From a hash
    /// set each is added, then deleted: an `add` of one it holds changes nothing, so the
    /// delete always finds it, and no listing is needed (listing a million for every part
    /// of a `-d` of a million took 128 s). An interval set is rebuilt as it is minus `nets`
    /// (listed, flushed, added back with the time each had left): an added network that
    /// overlaps a held one would fail, and nft 1.0.6 took minutes to delete 50,000 elements
    /// of an interval set with `delete element`. Interval sets hold networks only: few.
    fn remove_listed(&self, nets: &[IpNet]) -> Result<()> {
        let drop: std::collections::HashSet<&IpNet> = nets.iter().collect();
        let mut script = String::new();
        for (set, interval) in self.sets() {
            let asked: Vec<&IpNet> = nets
                .iter()
                .filter(|n| self.set_for(n).ok() == Some(set))
                .collect();
            if asked.is_empty() {
                continue;
            }
            if !interval {
                let gone: Vec<String> = asked.iter().map(|n| net_text(n)).collect();
                script.push_str(&self.elements_line("add", set, &gone));
                script.push_str(&self.elements_line("delete", set, &gone));
                continue;
            }
            let mut held = Vec::new();
            self.elements_of(set, &mut held)?;
            let keep: Vec<String> = held
                .iter()
                .filter(|(n, _)| !drop.contains(n))
                .map(|(n, t)| match t {
                    Some(t) => format!("{n} timeout {}s", (*t).max(1)),
                    None => n.to_string(),
                })
                .collect();
            script.push_str(&format!("flush set inet {} {set}\n", self.table));
            script.push_str(&self.elements_line("add", set, &keep));
        }
        if script.is_empty() {
            return Ok(());
        }
        run(&self.nft, &["-f", "-"], Some(script.as_bytes()))
    }

    /// `add element` lines for `entries`, one per set (an element held already stays).
    fn add_script(&self, entries: &[Entry], now: i64) -> Result<String> {
        let mut script = String::new();
        for (set, _, _) in SETS {
            let mut elems = Vec::new();
            for e in entries {
                if self.set_for(&e.net)? == set {
                    elems.push(Self::element(e, now));
                }
            }
            script.push_str(&self.elements_line("add", set, &elems));
        }
        Ok(script)
    }

    /// `VERB element inet TABLE SET { e1, e2, … }` as a script line; nothing for no elements.
    fn elements_line(&self, verb: &str, set: &str, elems: &[String]) -> String {
        if elems.is_empty() {
            return String::new();
        }
        format!(
            "{verb} element inet {} {set} {{ {} }}\n",
            self.table,
            elems.join(", ")
        )
    }

    fn unusable(e: FwError) -> FwError {
        FwError::new(
            e.kind,
            format!("nft is not usable: {e}\ninstall it (apt-get install nftables, or opkg install nftables) on a kernel with nf_tables"),
        )
    }
}

impl Backend for Nft {
    fn prepare(&self) -> Result<()> {
        // `list chains` and not `list table`: nft lists a table with every element of its
        // sets (0.4 s at 100,000), its chains alone in milliseconds; `-a` of one address
        // must not cost a listing of a million.
        if output(&self.nft, &["list", "chains", "inet"])
            .is_ok_and(|text| has_input_chain(&text, &self.table))
        {
            return Ok(());
        }
        run(&self.nft, &["-f", "-"], Some(self.table_def().as_bytes())).map_err(Self::unusable)?;
        self.remember();
        Ok(())
    }

    fn restore(&self, bans: &dyn Source, now: i64) -> Result<()> {
        // Declaring the table first makes the delete valid when it does not exist yet; the
        // table made again, then its elements in lines of at most `PER_LINE` per set, as
        // they are read, all in one transaction.
        let empty = format!(
            "table inet {t} {{}}\ndelete table inet {t}\n{}",
            self.table_def(),
            t = self.table
        );
        let mut read_error = None;
        let ran = run_fed(&self.nft, &["-f", "-"], &mut |w| {
            w.write_all(empty.as_bytes())?;
            let mut pending: [Vec<String>; 4] = Default::default();
            let mut written = Ok(());
            let read = bans.each(&mut |e| {
                let Ok(set) = self.set_for(&e.net) else {
                    return;
                };
                let i = SETS
                    .iter()
                    .position(|(name, _, _)| *name == set)
                    .unwrap_or(0);
                pending[i].push(Self::element(&e, now));
                if pending[i].len() == PER_LINE && written.is_ok() {
                    written = w.write_all(self.elements_line("add", set, &pending[i]).as_bytes());
                    pending[i].clear();
                }
            });
            written?;
            if let Err(e) = read {
                let text = e.to_string();
                read_error = Some(e);
                return Err(std::io::Error::other(text));
            }
            for ((set, _, _), elems) in SETS.iter().zip(&pending) {
                w.write_all(self.elements_line("add", set, elems).as_bytes())?;
            }
            Ok(())
        });
        match (ran, read_error) {
            (Ok(()), _) => {
                self.remember();
                return Ok(());
            }
            (Err(_), Some(e)) => return Err(e),
            (Err(_), None) => {}
        }
        // One element the kernel refuses (overlapping networks: interval sets reject
        // them) must not cost the others, nor the start: an empty table, then each ban on
        // its own, the refused ones logged.
        run(&self.nft, &["-f", "-"], Some(empty.as_bytes())).map_err(Self::unusable)?;
        self.remember();
        let (mut refused, mut total) = (0, 0);
        bans.each(&mut |b| {
            if !self.ipv6 && is_v6(&b.net) {
                return;
            }
            total += 1;
            if let Err(e) = self.ban(&b, now) {
                refused += 1;
                crate::error!("restore: {} not put back: {e}", b.net);
            }
        })?;
        if refused > 0 {
            crate::warn!("restore: {refused} of {total} ban(s) refused by nft");
        }
        Ok(())
    }

    fn ban(&self, e: &Entry, now: i64) -> Result<()> {
        let set = self.set_for(&e.net)?;
        let elem = [Self::element(e, now)];
        self.cli
            .apply(&self.nft, &self.elements_line("add", set, &elem))
    }

    fn adds_idempotently(&self) -> bool {
        true
    }

    fn ban_many(&self, entries: &[Entry], now: i64) -> Result<()> {
        if let [e] = entries {
            return self.ban(e, now);
        }
        self.cli.apply(&self.nft, &self.add_script(entries, now)?)
    }

    fn ban_many_started(&self, entries: &[Entry], now: i64) -> Option<Started> {
        let script = self.add_script(entries, now).ok()?;
        Started::spawn(&self.nft, &["-f", "-"], script.as_bytes())
    }

    fn unban_many(&self, nets: &[IpNet]) -> Result<()> {
        if nets.len() > REBUILD_ABOVE {
            return self.remove_listed(nets);
        }
        let mut script = String::new();
        for (set, _, _) in SETS {
            let mut elems = Vec::new();
            for n in nets {
                if self.set_for(n)? == set {
                    elems.push(net_text(n));
                }
            }
            script.push_str(&self.elements_line("delete", set, &elems));
        }
        self.cli.apply(&self.nft, &script)
    }

    fn list(&self) -> Result<Vec<IpNet>> {
        Ok(self.elements()?.into_iter().map(|(n, _)| n).collect())
    }

    fn limit_sip(&self, limit: Option<&SipLimit>) -> Result<()> {
        let t = &self.table;
        // Flushing the meters too: an element keeps the rate it was made with for as long as
        // its source keeps sending.
        let mut script = format!(
            "flush chain inet {t} guard\nflush set inet {t} guard4\nflush set inet {t} guard6\n"
        );
        for r in limit.map(|l| self.limit_rules(l)).unwrap_or_default() {
            script.push_str(&format!("add rule inet {t} guard {r}\n"));
        }
        self.cli.apply(&self.nft, &script)?;
        *self.limit.borrow_mut() = limit.cloned();
        self.remember();
        Ok(())
    }

    fn keep_running(&self) {
        self.cli.start(&self.nft, self.interactive);
    }

    fn describe(&self) -> Option<String> {
        self.cli.describe()
    }

    fn holds(&self, net: &IpNet) -> Result<bool> {
        let set = self.set_for(net)?;
        let elem = format!("{{ {} }}", net_text(net));
        held(run(
            &self.nft,
            &["get", "element", "inet", &self.table, set, &elem],
            None,
        ))
    }

    fn faults(&self) -> Result<Vec<String>> {
        if self.shape.borrow().is_none() {
            return Ok(Vec::new());
        }
        Ok(self.faults_of(&self.shape_now()?))
    }

    fn list_and_faults(&self) -> Result<(Vec<IpNet>, Result<Vec<String>>)> {
        let listing = output(&self.nft, &["list", "table", "inet", &self.table])?;
        let (shape, blocks) = shape::split_listing(&listing);
        let mut nets = Vec::new();
        for (set, body) in &blocks {
            if self.sets().any(|(s, _)| s == set) {
                shape::parse_elements(body, &mut nets);
            }
        }
        let nets = nets.into_iter().map(|(n, _)| n).collect();
        Ok((nets, Ok(self.faults_of(&shape))))
    }

    fn unban(&self, net: &IpNet) -> Result<()> {
        let set = self.set_for(net)?;
        let elem = [net_text(net)];
        match self
            .cli
            .apply(&self.nft, &self.elements_line("delete", set, &elem))
        {
            // Already gone: its kernel timeout ran out first, or the whole table went.
            Err(e) if matches!(e.kind, ErrorKind::NotThere | ErrorKind::MissingChain) => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shape::rules_in;
    use super::{has_input_chain, nft_seconds};

    #[test]
    fn the_rules_of_a_chain_are_counted_without_its_declaration() {
        let listing = "table inet ampere {\n\tset v4 {\n\t\ttype ipv4_addr\n\t}\n\n\tchain guard {\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tjump guard\n\t\tmeta l4proto { tcp, udp } th dport 5060 ip saddr @v4 drop\n\t\taccept\n\t}\n}\n";
        assert_eq!(rules_in(listing, "input"), 3);
        assert_eq!(rules_in(listing, "guard"), 0);
        assert_eq!(rules_in(listing, "nope"), 0);
    }

    #[test]
    fn the_input_chain_is_found_in_its_own_table_only() {
        let listing = "table inet fw4 {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\ntable inet ampere {\n\tchain guard {\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t}\n}\n";
        assert!(has_input_chain(listing, "ampere"));
        assert!(!has_input_chain(listing, "other"));
        let no_input = "table inet ampere {\n\tchain guard {\n\t}\n}\ntable inet fw4 {\n\tchain input {\n\t}\n}\n";
        assert!(!has_input_chain(no_input, "ampere"));
    }

    #[test]
    fn nft_durations_read_as_seconds() {
        assert_eq!(nft_seconds("29d23h59m59s996ms"), Some(30 * 86_400));
        assert_eq!(nft_seconds("59m59s"), Some(3599));
        assert_eq!(nft_seconds("940ms"), Some(1));
        assert_eq!(nft_seconds("2s"), Some(2));
        assert_eq!(nft_seconds("x"), None);
        assert_eq!(nft_seconds("5"), None);
    }
}
