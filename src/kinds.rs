//! The one table of the events Ampere reads: each security event kind with its name, its
//! default weight, whether it is about an account's credentials, which of Asterisk's
//! modules send it, what proves its source, and what it means; and the system events the
//! session and the memory of known hosts read. `EventKind`'s names and the default weights
//! come from here, and so do the documents that list them (`docs.rs`: the README's table,
//! the sample configs' weight lines, the man page, manager.conf's `eventfilter` lines),
//! which a test holds to it. A new kind is a variant of `EventKind` and a row here.

use crate::score::{EventKind, Weight};

/// A module of Asterisk that sends security events, as its `Service:` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// res_pjsip (`Service: PJSIP`).
    Pjsip,
    /// chan_sip (`Service: SIP`), Asterisk 20 and before.
    ChanSip,
    /// The manager itself (`Service: AMI`).
    Ami,
    /// chan_iax2, which reports nothing on AMI: its lines in Asterisk's log, read by the
    /// log door (`logdoor.rs`; `authdebug = yes` in iax.conf).
    Iax2Log,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Pjsip => "PJSIP",
            Driver::ChanSip => "chan_sip",
            Driver::Ami => "AMI",
            Driver::Iax2Log => "chan_iax2 (Asterisk's log)",
        }
    }
}

/// One row: everything Ampere knows of an event kind.
pub struct Kind {
    pub kind: EventKind,
    /// Asterisk's `Event:` value.
    pub name: &'static str,
    pub weight: Weight,
    /// About the credentials of a named account: what a success for that same account may
    /// take back.
    pub credential: bool,
    /// Who sends it, read from Asterisk's sources (res_pjsip's security_events.c, chan_sip's
    /// security_events.h, manager.c) and the captures.
    pub sent_by: &'static [Driver],
    /// What proves its source (`score::Evidence`).
    #[cfg(not(ampere_lean))]
    pub evidence: &'static str,
    /// What it means, for a person.
    #[cfg(not(ampere_lean))]
    pub meaning: &'static str,
}

const fn add(base: u32, bump: u32) -> Weight {
    Weight::Add { base, bump }
}

#[cfg(not(ampere_lean))]
const TRANSPORT: &str = "strong over TCP, TLS, WS(S) and from AMI; weak over UDP";

use Driver::{Ami, ChanSip, Iax2Log, Pjsip};

impl Kind {
    /// Whether Asterisk sends it on AMI (an `Event:` of that name is read), or only the log
    /// door makes it.
    pub fn on_ami(&self) -> bool {
        self.sent_by.is_empty() || self.sent_by.iter().any(|d| *d != Iax2Log)
    }
}

/// In `EventKind::ALL`'s order (a test holds them together).
pub const KINDS: [Kind; 16] = [
    Kind {
        kind: EventKind::InvalidPassword,
        name: "InvalidPassword",
        weight: add(1, 1),
        credential: true,
        sent_by: &[ChanSip, Ami],
        #[cfg(not(ampere_lean))]
        evidence: "strong over TCP, TLS, WS(S), from AMI, and when chan_sip's ReceivedChallenge is the Challenge it issued; weak otherwise",
        #[cfg(not(ampere_lean))]
        meaning: "a wrong password (chan_sip, also for an unknown user with alwaysauthreject; AMI's wrong secret)",
    },
    Kind {
        kind: EventKind::ChallengeResponseFailed,
        name: "ChallengeResponseFailed",
        weight: add(1, 1),
        credential: true,
        sent_by: &[Pjsip, Ami],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a wrong digest answer to a challenge (PJSIP's wrong password)",
    },
    Kind {
        kind: EventKind::ChallengeSent,
        name: "ChallengeSent",
        weight: add(4, 10),
        credential: true,
        sent_by: &[Pjsip, ChanSip],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a request challenged for credentials; free for an account the host logged in with",
    },
    Kind {
        kind: EventKind::FailedACL,
        name: "FailedACL",
        weight: add(4, 5),
        credential: false,
        sent_by: &[Pjsip, ChanSip, Ami],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "refused by an ACL; free when the registrar refuses a request right after its success",
    },
    Kind {
        kind: EventKind::InvalidAccountID,
        name: "InvalidAccountID",
        weight: add(5, 5),
        credential: false,
        sent_by: &[Pjsip, ChanSip, Ami, Iax2Log],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "an account that does not exist (extension scanning); on strong evidence it bans a host that never logged in at once",
    },
    Kind {
        kind: EventKind::RequestBadFormat,
        name: "RequestBadFormat",
        weight: add(3, 3),
        credential: false,
        sent_by: &[Ami],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a malformed request",
    },
    Kind {
        kind: EventKind::RequestNotAllowed,
        name: "RequestNotAllowed",
        weight: add(2, 2),
        credential: false,
        sent_by: &[Ami],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a request the account may not make (an AMI action without the rights)",
    },
    Kind {
        kind: EventKind::AuthMethodNotAllowed,
        name: "AuthMethodNotAllowed",
        weight: add(3, 3),
        credential: false,
        sent_by: &[],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "an authentication method that is not allowed",
    },
    Kind {
        kind: EventKind::UnexpectedAddress,
        name: "UnexpectedAddress",
        weight: add(3, 3),
        credential: false,
        sent_by: &[],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a session continued from another address",
    },
    Kind {
        kind: EventKind::InvalidTransport,
        name: "InvalidTransport",
        weight: add(3, 3),
        credential: false,
        sent_by: &[ChanSip],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a transport the account may not use",
    },
    Kind {
        kind: EventKind::RequestNotSupported,
        name: "RequestNotSupported",
        weight: add(1, 1),
        credential: false,
        sent_by: &[Pjsip],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a request Asterisk does not support",
    },
    Kind {
        kind: EventKind::SuccessfulAuth,
        name: "SuccessfulAuth",
        weight: Weight::Clear,
        credential: false,
        sent_by: &[Pjsip, ChanSip, Ami],
        #[cfg(not(ampere_lean))]
        evidence: "always strong: a right digest needs the nonce sent to that address",
        #[cfg(not(ampere_lean))]
        meaning: "a success: takes back what failures against that same account added, and makes the host known",
    },
    Kind {
        kind: EventKind::SessionLimit,
        name: "SessionLimit",
        weight: add(1, 1),
        credential: false,
        sent_by: &[ChanSip, Ami],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a login refused at the session limit, before its secret was checked: a guess",
    },
    Kind {
        kind: EventKind::MemoryLimit,
        name: "MemoryLimit",
        weight: add(1, 1),
        credential: false,
        sent_by: &[Pjsip],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a request refused for lack of memory",
    },
    Kind {
        kind: EventKind::LoadAverageLimit,
        name: "LoadAverageLimit",
        weight: add(1, 1),
        credential: false,
        sent_by: &[],
        #[cfg(not(ampere_lean))]
        evidence: TRANSPORT,
        #[cfg(not(ampere_lean))]
        meaning: "a request refused at the load average limit",
    },
    Kind {
        kind: EventKind::Iax2AuthFailed,
        name: "Iax2AuthFailed",
        weight: add(5, 5),
        credential: true,
        sent_by: &[Iax2Log],
        #[cfg(not(ampere_lean))]
        evidence: "strong while call tokens are required (iax.conf's requirecalltoken, yes by default): the source answered a CALLTOKEN first; weak for a peer or user with requirecalltoken = no",
        #[cfg(not(ampere_lean))]
        meaning: "chan_iax2's wrong MD5 secret for a registration or a call: the challenge and its failed answer in one line of Asterisk's log",
    },
];

/// The system events Ampere reads besides the security ones, and why: the eventfilter
/// must let them through.
pub const SYSTEM_EVENTS: [(&str, &str); 3] = [
    (
        "PeerStatus",
        "a registration (chan_sip, chan_iax2, PJSIP): the memory of known hosts",
    ),
    ("FullyBooted", "Asterisk is ready: the session's start"),
    (
        "Shutdown",
        "Asterisk stops or restarts: Ampere logs in again",
    ),
];

/// The row of `kind`.
pub fn of(kind: EventKind) -> &'static Kind {
    &KINDS[kind.index()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_the_enum() {
        for (k, row) in EventKind::ALL.iter().zip(&KINDS) {
            assert_eq!(*k, row.kind);
            assert_eq!(of(*k).name, row.name);
        }
    }
}
