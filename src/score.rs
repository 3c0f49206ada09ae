//! What each AMI security event is worth, and the arithmetic of weights. The defaults are
//! in the table of event kinds (`kinds.rs`): the original Ampere's arithmetic exactly, and
//! weights for the events it ignored.

use crate::error::Invalid;

/// The security events Ampere scores. Names are Asterisk's `Event:` values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventKind {
    InvalidPassword,
    ChallengeResponseFailed,
    ChallengeSent,
    FailedACL,
    InvalidAccountID,
    RequestBadFormat,
    RequestNotAllowed,
    AuthMethodNotAllowed,
    UnexpectedAddress,
    InvalidTransport,
    RequestNotSupported,
    SuccessfulAuth,
    /// AMI: a login while that user's session limit is reached (Asterisk checks this before
    /// the secret, so an attacker's guess shows up here instead of as InvalidPassword).
    SessionLimit,
    /// AMI: a session refused because Asterisk is short of memory or overloaded.
    MemoryLimit,
    LoadAverageLimit,
    /// chan_iax2's wrong secret, from Asterisk's log (the log door): it sends nothing on AMI.
    Iax2AuthFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        EventKind::InvalidPassword,
        EventKind::ChallengeResponseFailed,
        EventKind::ChallengeSent,
        EventKind::FailedACL,
        EventKind::InvalidAccountID,
        EventKind::RequestBadFormat,
        EventKind::RequestNotAllowed,
        EventKind::AuthMethodNotAllowed,
        EventKind::UnexpectedAddress,
        EventKind::InvalidTransport,
        EventKind::RequestNotSupported,
        EventKind::SuccessfulAuth,
        EventKind::SessionLimit,
        EventKind::MemoryLimit,
        EventKind::LoadAverageLimit,
        EventKind::Iax2AuthFailed,
    ];

    /// Asterisk's `Event:` value (`kinds::KINDS`).
    pub fn name(self) -> &'static str {
        crate::kinds::of(self).name
    }

    /// Events about the credentials of a named account: what a later success for that same
    /// account may clear (a phone that mistyped its own password and then got it right).
    pub fn is_credential(self) -> bool {
        crate::kinds::of(self).credential
    }

    /// A wrong password (not a challenge: an answer that failed).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            EventKind::InvalidPassword | EventKind::ChallengeResponseFailed
        )
    }

    /// Exact (case-sensitive) match on an `Event:` value, as Asterisk spells them.
    /// (Only kinds Asterisk sends on AMI: `Iax2AuthFailed` is the log door's.)
    pub fn from_event(name: &[u8]) -> Option<EventKind> {
        crate::kinds::KINDS
            .iter()
            .find(|k| k.name.as_bytes() == name && k.on_ami())
            .map(|k| k.kind)
    }

    /// Case-insensitive match, for config keys typed by people.
    pub fn from_config(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Whether an event proves that its source address receives what the PBX sends it.
///
/// Over UDP anyone can send a request with any source address, and Asterisk reports it as
/// if that address had sent it: one forged REGISTER gives `InvalidAccountID` or
/// `ChallengeSent`, one with a made-up `Authorization` header `ChallengeResponseFailed`
/// (`pjsip-forged-source`, `pjsip-forged-auth`). Such an event is **weak** evidence. It is
/// **strong** when the source had to receive the PBX's answers to cause it: the transport
/// is TCP, TLS, WS or WSS (the handshake), the event is AMI's own (TCP), it is a success (a
/// right digest needs the nonce the PBX sent to that address), or chan_sip's
/// `InvalidPassword` names as `ReceivedChallenge` the very nonce it issued as `Challenge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    Strong,
    Weak,
}

impl Evidence {
    /// As the database stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::Strong => "strong",
            Evidence::Weak => "weak",
        }
    }

    /// A stored value; anything but `weak` is strong (rows from before evidence).
    pub fn parse(s: &str) -> Evidence {
        if s == "weak" {
            Evidence::Weak
        } else {
            Evidence::Strong
        }
    }
}

/// One penalty unit: the ban limit is `loyalty` units, and the original's "bump" rule fires when
/// a host is one point short of a whole unit.
pub const UNIT: u32 = 5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Weight {
    /// `+base`, or `+bump` when `penalty % UNIT == UNIT - 1` (the original's rule for
    /// ChallengeSent and FailedACL). `base == bump` is a plain increment; 0/0 ignores the event.
    Add { base: u32, bump: u32 },
    /// A legitimate event: the host starts from zero.
    Clear,
}

impl Weight {
    pub fn apply(self, penalty: u32) -> u32 {
        match self {
            Weight::Add { base, bump } => {
                let inc = if penalty % UNIT == UNIT - 1 {
                    bump
                } else {
                    base
                };
                penalty.saturating_add(inc)
            }
            Weight::Clear => 0,
        }
    }

    /// Config syntax: `N`, `N/M` (M when one short of a unit), or `clear`.
    pub fn parse(s: &str) -> Result<Weight, Invalid> {
        if s.eq_ignore_ascii_case("clear") {
            return Ok(Weight::Clear);
        }
        let num = |t: &str| -> Result<u32, Invalid> {
            t.trim()
                .parse::<u32>()
                .ok()
                .filter(|&n| n <= 1_000_000)
                .ok_or_else(|| Invalid(format!("weight must be N, N/M or `clear`, not `{s}`")))
        };
        match s.split_once('/') {
            Some((a, b)) => Ok(Weight::Add {
                base: num(a)?,
                bump: num(b)?,
            }),
            None => {
                let n = num(s)?;
                Ok(Weight::Add { base: n, bump: n })
            }
        }
    }
}

impl std::fmt::Display for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Weight::Clear => f.write_str("clear"),
            Weight::Add { base, bump } if base == bump => write!(f, "{base}"),
            Weight::Add { base, bump } => write!(f, "{base}/{bump}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weights([Weight; EventKind::ALL.len()]);

/// The defaults of `kinds::KINDS`: the original Ampere's arithmetic for its five, and
/// weights for what it ignored.
impl Default for Weights {
    fn default() -> Weights {
        Weights(crate::kinds::KINDS.map(|k| k.weight))
    }
}

#[cfg(test)]
fn add(base: u32, bump: u32) -> Weight {
    Weight::Add { base, bump }
}

impl Weights {
    pub fn get(&self, kind: EventKind) -> Weight {
        self.0[kind.index()]
    }

    pub fn set(&mut self, kind: EventKind, w: Weight) {
        self.0[kind.index()] = w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq: &[EventKind]) -> Vec<u32> {
        let w = Weights::default();
        let mut p = 0;
        seq.iter()
            .map(|&k| {
                p = w.get(k).apply(p);
                p
            })
            .collect()
    }

    #[test]
    fn original_arithmetic_wrong_password() {
        use EventKind::*;
        // The README of the captures: 4, 5, 9, 10, 14, 15.
        let seq = [
            ChallengeSent,
            ChallengeResponseFailed,
            ChallengeSent,
            ChallengeResponseFailed,
            ChallengeSent,
            ChallengeResponseFailed,
        ];
        assert_eq!(run(&seq), vec![4, 5, 9, 10, 14, 15]);
    }

    #[test]
    fn original_arithmetic_challenges_and_acl() {
        use EventKind::*;
        assert_eq!(
            run(&[ChallengeSent, ChallengeSent, ChallengeSent]),
            vec![4, 14, 24]
        );
        assert_eq!(run(&[FailedACL, ChallengeSent, FailedACL]), vec![4, 14, 19]);
        assert_eq!(run(&[ChallengeSent, SuccessfulAuth]), vec![4, 0]);
    }

    #[test]
    fn parse_weights() {
        assert_eq!(Weight::parse("3").unwrap(), add(3, 3));
        assert_eq!(Weight::parse("4/10").unwrap(), add(4, 10));
        assert_eq!(Weight::parse("CLEAR").unwrap(), Weight::Clear);
        assert!(Weight::parse("-1").is_err());
        assert!(Weight::parse("4/").is_err());
        assert!(Weight::parse("x").is_err());
        assert_eq!(add(4, 10).to_string(), "4/10");
    }

    #[test]
    fn event_names() {
        for k in EventKind::ALL {
            let on_ami = crate::kinds::of(k).on_ami();
            assert_eq!(
                EventKind::from_event(k.name().as_bytes()),
                on_ami.then_some(k)
            );
            assert_eq!(EventKind::from_config(&k.name().to_lowercase()), Some(k));
        }
        // The log door's kind is never read from AMI.
        assert_eq!(EventKind::from_event(b"Iax2AuthFailed"), None);
        assert_eq!(EventKind::from_event(b"invalidpassword"), None);
        assert_eq!(EventKind::from_event(b"Shutdown"), None);
    }
}
