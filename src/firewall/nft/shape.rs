//! What the audit compares the table's rules with: the table's shape (its sets and chains
//! without elements) as nft prints it, in nft's own wording whatever its version; and the
//! reading of a listing's elements.
//!
//! The reference is not read from the live table: nft 1.0.6 fetches every element of a set
//! a listed rule refers to, also with `-t` (12.4 s for `nft -t list table` with 875,000
//! addresses in place), and the reference is taken in the loop, after each write of the
//! table and each change of the SIP limit. It is read from a scratch copy instead: the same
//! definition under another name, dormant (its chains hooked nowhere, so it drops and
//! limits nothing) and without elements, listed, then deleted. The live table is listed
//! only by the audit, in its child, once for its elements and shape together
//! (`list_and_faults`, `split_listing`).

use ipnet::IpNet;

use super::{nft_seconds, output, run, Nft, Result, SETS};

/// The rules of `chain` in a listing of the table (its base chain declaration not counted).
pub(super) fn rules_in(listing: &str, chain: &str) -> usize {
    let head = format!("chain {chain} {{");
    let mut lines = listing.lines().map(str::trim);
    if !lines.any(|l| l == head) {
        return 0;
    }
    lines
        .take_while(|l| *l != "}")
        .filter(|l| !l.is_empty() && !l.starts_with("type "))
        .count()
}

/// The elements of an `elements = { ... }` block (its text between the braces) with the
/// seconds each has left (None = no timeout), added to `out`.
pub(super) fn parse_elements(body: &str, out: &mut Vec<(IpNet, Option<u64>)>) {
    for elem in body.split(',') {
        let mut words = elem.split_whitespace();
        if let Some(Ok(n)) = words.next().map(crate::addr::parse_net) {
            let left = words
                .skip_while(|w| *w != "expires")
                .nth(1)
                .and_then(nft_seconds);
            out.push((n, left));
        }
    }
}

/// A full listing of the table (`nft list table`) split into its shape, as `nft -t list
/// table` prints it (the same text without the `elements = { ... }` blocks, which may run
/// over several lines), and each set's elements text by set name. One listing gives the
/// audit both: `-t` fetches every element anyway (a rule refers to the sets).
pub(super) fn split_listing(listing: &str) -> (String, Vec<(String, String)>) {
    let mut shape = String::with_capacity(1024);
    let mut elements: Vec<(String, String)> = Vec::new();
    let mut set = String::new();
    let mut lines = listing.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("set ").and_then(|r| r.strip_suffix(" {")) {
            set = name.to_string();
        }
        let Some(first) = t.strip_prefix("elements = {") else {
            shape.push_str(line);
            shape.push('\n');
            continue;
        };
        // Addresses, networks, timeouts and expiries hold no `}`: the block ends at the
        // first line with one.
        let mut body = String::from(first);
        let mut ended = first.contains('}');
        while !ended {
            let Some(next) = lines.next() else { break };
            body.push(' ');
            body.push_str(next.trim());
            ended = next.contains('}');
        }
        let body = body.split('}').next().unwrap_or("").to_string();
        elements.push((set.clone(), body));
    }
    (shape, elements)
}

/// A listing of the scratch table as the live one prints: its name, and without the
/// dormant flag's line (and the blank line after it).
fn as_live(listing: &str, scratch: &str, table: &str) -> String {
    let mut out = String::with_capacity(listing.len());
    let mut lines = listing.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "flags dormant" {
            if lines.peek().is_some_and(|l| l.trim().is_empty()) {
                lines.next();
            }
            continue;
        }
        match line.strip_prefix(&format!("table inet {scratch} ")) {
            Some(rest) => out.push_str(&format!("table inet {table} {rest}")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Nft {
    /// The live table's sets and chains as nft prints them, without elements (the
    /// audit's, off the loop).
    pub(super) fn shape_now(&self) -> Result<String> {
        output(&self.nft, &["-t", "list", "table", "inet", &self.table])
    }

    /// How `have`, the live table's shape, differs from what Ampere last wrote.
    pub(super) fn faults_of(&self, have: &str) -> Vec<String> {
        let Some(want) = self.shape.borrow().clone() else {
            return Vec::new();
        };
        if have == want {
            return Vec::new();
        }
        let lines = |t: &str| -> Vec<String> { t.lines().map(|l| l.trim().to_string()).collect() };
        vec![format!(
            "nft: table inet {}: {}",
            self.table,
            crate::firewall::iptables::describe_change(&lines(&want), &lines(have), str::to_string)
        )]
    }

    /// The shape the table has as Ampere writes it now (its SIP limit included), from a
    /// scratch copy: milliseconds, whatever the sets hold.
    fn shape_written(&self) -> Result<String> {
        let scratch = format!("{}_shape", self.table);
        // Made anew: one left by a process killed between its steps is replaced.
        let def = format!(
            "table inet {scratch} {{}}\ndelete table inet {scratch}\n{}",
            self.table_def_named(&scratch, true)
        );
        run(&self.nft, &["-f", "-"], Some(def.as_bytes()))?;
        let listed = output(&self.nft, &["-t", "list", "table", "inet", &scratch]);
        let deleted = run(&self.nft, &["delete", "table", "inet", &scratch], None);
        let shape = as_live(&listed?, &scratch, &self.table);
        deleted?;
        Ok(shape)
    }

    /// Notes the table's shape as Ampere just wrote it.
    pub(super) fn remember(&self) {
        // One that cannot be read (a tool failing for a moment) keeps the last shape:
        // forgotten, the audit was blind to every fault of the rules until the next write
        // (the property test's failing tools found it); a stale one at worst makes the
        // table again once. The counts check what nft printed against what was written.
        if let Ok(shape) = self.shape_written() {
            let guard = self
                .limit
                .borrow()
                .as_ref()
                .map_or(0, |l| self.limit_rules(l).len());
            if rules_in(&shape, "input") == 1 + SETS.len() && rules_in(&shape, "guard") == guard {
                *self.shape.borrow_mut() = Some(shape);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{as_live, split_listing};

    #[test]
    fn the_scratch_listing_reads_as_the_live_one() {
        let scratch = "table inet ampere_shape {\n\tflags dormant\n\n\tset v4 {\n\t\ttype ipv4_addr\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tjump guard\n\t}\n}\n";
        let live = "table inet ampere {\n\tset v4 {\n\t\ttype ipv4_addr\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tjump guard\n\t}\n}\n";
        assert_eq!(as_live(scratch, "ampere_shape", "ampere"), live);
    }

    /// `nft list table` and `nft -t list table` of the same table, as nft 1.0.6 printed them.
    const FULL: &str = "table inet ampere {\n\tset v4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\tgc-interval 1h\n\t\telements = { 10.0.0.1, 10.0.0.2 timeout 1h expires 59m59s996ms,\n\t\t\t     10.0.0.3 }\n\t}\n\n\tset net4 {\n\t\ttype ipv4_addr\n\t\tflags interval,timeout\n\t\telements = { 10.1.0.0/16 timeout 1h expires 59m59s992ms, 10.3.0.0/24 }\n\t}\n\n\tset v6 {\n\t\ttype ipv6_addr\n\t\tflags timeout\n\t\tgc-interval 1h\n\t\telements = { 2001:db8::1 }\n\t}\n\n\tset net6 {\n\t\ttype ipv6_addr\n\t\tflags interval,timeout\n\t}\n\n\tset guard4 {\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t\telements = { 10.9.9.9 expires 59s996ms }\n\t}\n\n\tchain guard {\n\t\tudp dport 5060 update @guard4 { ip saddr limit rate over 50/second burst 100 packets } drop\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tjump guard\n\t\tmeta l4proto { tcp, udp } th dport 5060 ip saddr @v4 drop\n\t\tmeta l4proto { tcp, udp } th dport 5060 ip saddr @net4 drop\n\t}\n}\n";
    const TERSE: &str = "table inet ampere {\n\tset v4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\tgc-interval 1h\n\t}\n\n\tset net4 {\n\t\ttype ipv4_addr\n\t\tflags interval,timeout\n\t}\n\n\tset v6 {\n\t\ttype ipv6_addr\n\t\tflags timeout\n\t\tgc-interval 1h\n\t}\n\n\tset net6 {\n\t\ttype ipv6_addr\n\t\tflags interval,timeout\n\t}\n\n\tset guard4 {\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t}\n\n\tchain guard {\n\t\tudp dport 5060 update @guard4 { ip saddr limit rate over 50/second burst 100 packets } drop\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tjump guard\n\t\tmeta l4proto { tcp, udp } th dport 5060 ip saddr @v4 drop\n\t\tmeta l4proto { tcp, udp } th dport 5060 ip saddr @net4 drop\n\t}\n}\n";

    #[test]
    fn a_full_listing_splits_into_the_terse_shape_and_each_sets_elements() {
        let (shape, blocks) = split_listing(FULL);
        assert_eq!(shape, TERSE);
        let names: Vec<&str> = blocks.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["v4", "net4", "v6", "guard4"]);
        // A block over two lines is read whole.
        let v4: Vec<&str> = blocks[0].1.split(',').map(str::trim).collect();
        assert_eq!(v4[0], "10.0.0.1");
        assert!(v4[1].starts_with("10.0.0.2 timeout 1h expires"), "{v4:?}");
        assert_eq!(v4[2], "10.0.0.3");
        assert_eq!(blocks[2].1.trim(), "2001:db8::1");
        // Without elements, the listing is its shape.
        let (shape, blocks) = split_listing(TERSE);
        assert_eq!((shape.as_str(), blocks.len()), (TERSE, 0));
    }
}
