//! What the audit compares the table's rules with: the table's shape (its sets and chains
//! without elements) as nft prints it, in nft's own wording whatever its version.
//!
//! The reference is not read from the live table: nft 1.0.6 fetches every element of a set
//! a listed rule refers to, also with `-t` (12.4 s for `nft -t list table` with 875,000
//! addresses in place), and the reference is taken in the loop, after each write of the
//! table and each change of the SIP limit. It is read from a scratch copy instead: the same
//! definition under another name, dormant (its chains hooked nowhere, so it drops and
//! limits nothing) and without elements, listed, then deleted. The live table is listed
//! only by the audit, in its child (`faults`).

use super::{output, run, Nft, Result, SETS};

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
    use super::as_live;

    #[test]
    fn the_scratch_listing_reads_as_the_live_one() {
        let scratch = "table inet ampere_shape {\n\tflags dormant\n\n\tset v4 {\n\t\ttype ipv4_addr\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tjump guard\n\t}\n}\n";
        let live = "table inet ampere {\n\tset v4 {\n\t\ttype ipv4_addr\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tjump guard\n\t}\n}\n";
        assert_eq!(as_live(scratch, "ampere_shape", "ampere"), live);
    }
}
