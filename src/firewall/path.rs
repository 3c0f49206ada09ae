//! The admin's side of the rule path (iptables and ipset backends): whether INPUT leads into
//! Ampere's chain at all, and whether an `ESTABLISHED` accept comes first. Ampere reports
//! these and never changes them: INPUT is the admin's (README, "The firewall chain").
//!
//! Why a warning and not a conntrack flush on each ban: with the accept first, an attacker
//! that keeps sending over UDP keeps its flow ESTABLISHED and never reaches the chain, so a
//! flush would have to follow every ban (an exec of `conntrack`, which routers often lack)
//! and would still leave every other open flow of the attacker (TCP, other ports) in; the
//! rule order is the fault, and only the admin may change INPUT. The nft backend has no such
//! path: its own base chain drops before any accept of another table can matter.

use super::Result;

/// Targets that end a rule's path in iptables, or are extensions, never user chains.
const BUILTIN: &[&str] = &[
    "ACCEPT",
    "DROP",
    "REJECT",
    "RETURN",
    "LOG",
    "NFLOG",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "TRACE",
    "AUDIT",
    "CHECKSUM",
    "CLASSIFY",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "REDIRECT",
    "TCPMSS",
    "SET",
    "QUEUE",
    "NFQUEUE",
    "ULOG",
];

/// At most this many chains are listed to find the path (INPUT included).
const MAX_CHAINS: usize = 16;

/// What `-A CHAIN <rule>` sends where: its `-j`/`-g` target.
fn target(rule: &str) -> Option<&str> {
    let mut words = rule.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-j" || w == "-g" {
            return words.next();
        }
    }
    None
}

/// An accept of established flows that UDP takes too (no `-p tcp`).
fn accepts_established(rule: &str) -> bool {
    target(rule) == Some("ACCEPT")
        && rule.contains("ESTABLISHED")
        && !rule
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w == ["-p", "tcp"])
}

/// The faults of the path from INPUT into `chain` for one family (`tool` names it in the
/// messages). `list(name)` gives a chain's rules after `-A NAME `, or None when there is no
/// such chain. The jump is looked for in INPUT and in the user chains INPUT jumps to, three
/// deep (ufw, FreePBX and firewalld put their rules there).
pub fn faults(
    chain: &str,
    tool: &str,
    list: &mut dyn FnMut(&str) -> Result<Option<Vec<String>>>,
) -> Result<Vec<String>> {
    let input = list("INPUT")?.unwrap_or_default();
    let mut listed = 1;
    // The first rule of INPUT that leads into the chain, directly or through user chains.
    let mut entry = None;
    for (i, rule) in input.iter().enumerate() {
        let Some(t) = target(rule) else { continue };
        if t == chain || leads_to(t, chain, 2, &mut listed, list)? {
            entry = Some(i);
            break;
        }
    }
    let Some(at) = entry else {
        return Ok(vec![format!(
            "{tool}: no rule of INPUT leads into chain `{chain}`: its bans drop nothing (add the jumps, README step 2)"
        )]);
    };
    Ok(input[..at]
        .iter()
        .enumerate()
        .filter(|(_, r)| accepts_established(r))
        .map(|(i, r)| {
            format!(
                "{tool}: INPUT rule {} `{r}` comes before the jump into `{chain}` (rule {}): a banned attacker whose UDP flow is open stays in as long as it keeps sending; insert the jumps at the top (`{tool} -I INPUT 1 ...`, README step 2)",
                i + 1,
                at + 1
            )
        })
        .collect())
}

/// Whether user chain `from` leads into `chain` within `depth` more jumps.
fn leads_to(
    from: &str,
    chain: &str,
    depth: u8,
    listed: &mut usize,
    list: &mut dyn FnMut(&str) -> Result<Option<Vec<String>>>,
) -> Result<bool> {
    if BUILTIN.contains(&from) || *listed >= MAX_CHAINS {
        return Ok(false);
    }
    *listed += 1;
    let Some(rules) = list(from)? else {
        return Ok(false);
    };
    for rule in &rules {
        match target(rule) {
            Some(t) if t == chain => return Ok(true),
            Some(t) if depth > 0 && t != from && leads_to(t, chain, depth - 1, listed, list)? => {
                return Ok(true)
            }
            _ => {}
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn check(chains: &[(&str, &[&str])]) -> Vec<String> {
        let map: HashMap<&str, Vec<String>> = chains
            .iter()
            .map(|(n, r)| (*n, r.iter().map(|s| s.to_string()).collect()))
            .collect();
        faults("ampere", "iptables", &mut |name| Ok(map.get(name).cloned())).unwrap()
    }

    const JUMP: &str = "-p udp -m multiport --dports 5060,4569 -j ampere";
    const EST: &str = "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT";

    #[test]
    fn the_readme_s_order_is_clean() {
        assert!(check(&[("INPUT", &[JUMP, EST]), ("ampere", &[])]).is_empty());
    }

    #[test]
    fn an_established_accept_before_the_jump_is_named() {
        let f = check(&[("INPUT", &["-i lo -j ACCEPT", EST, JUMP])]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("INPUT rule 2") && f[0].contains("(rule 3)"),
            "{f:?}"
        );
        // Only for TCP, it lets no UDP flow through.
        let tcp = "-p tcp -m state --state ESTABLISHED -j ACCEPT";
        assert!(check(&[("INPUT", &[tcp, JUMP])]).is_empty());
    }

    #[test]
    fn a_jump_through_user_chains_counts_and_a_missing_one_is_said() {
        let f = check(&[
            ("INPUT", &[EST, "-j ufw-before-input"]),
            ("ufw-before-input", &["-j ufw-user-input"]),
            ("ufw-user-input", &[JUMP]),
        ]);
        assert_eq!(f.len(), 1, "{f:?}");
        let none = check(&[("INPUT", &["-j DROP", "-j loop"]), ("loop", &["-j loop"])]);
        assert!(none[0].contains("no rule of INPUT leads"), "{none:?}");
    }
}
