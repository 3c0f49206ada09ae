//! The config's own value types: which backend, what a ban rule does, a trusted name.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleTarget {
    Drop,
    Reject,
}

impl RuleTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleTarget::Drop => "DROP",
            RuleTarget::Reject => "REJECT",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Iptables,
    Ipset,
    Nft,
}

/// The backends, one row each (a new one is its file in `src/firewall/`, a row here, the
/// arm the compiler then asks for in `firewall::backend`, and its row in the netns suite).
impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Iptables, BackendKind::Ipset, BackendKind::Nft];

    /// Its name in the config first, then other names it answers to.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            BackendKind::Iptables => &["iptables"],
            BackendKind::Ipset => &["ipset"],
            BackendKind::Nft => &["nft", "nftables"],
        }
    }

    pub fn as_str(self) -> &'static str {
        self.names()[0]
    }

    pub fn parse(v: &str) -> Option<BackendKind> {
        let v = v.to_ascii_lowercase();
        BackendKind::ALL
            .into_iter()
            .find(|k| k.names().contains(&v.as_str()))
    }
}

/// A `trust` entry that is a host name, and its line in the config (0: not from a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustName {
    pub name: String,
    pub line: usize,
}
