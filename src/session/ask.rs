//! What Ampere asks Asterisk after each login: which phones are registered and from where
//! (`PJSIPShowContacts`, `SIPpeers`, `IAXpeers`), and which PJSIP endpoints are trunks
//! identified by address (`PJSIPShowEndpoints`, then `PJSIPShowEndpoint` for each endpoint
//! without inbound authentication: its `IdentifyDetail`). The answers are events like any
//! other and take the judge's way (`facts.rs`); here are only the actions, their ActionIDs,
//! and what an error answer means. The actions need `write = system` in manager.conf:
//! without it Asterisk answers "Permission denied", Ampere says so once per login and learns
//! phones from their logins alone.

use crate::ami::Message;
use crate::log::printable;
use crate::{debug, warn};

/// The lists asked for at each login: (action, what it tells).
const LISTS: [(&str, &str); 4] = [
    ("PJSIPShowContacts", "PJSIP contacts"),
    ("SIPpeers", "chan_sip peers"),
    ("IAXpeers", "chan_iax2 peers"),
    ("PJSIPShowEndpoints", "PJSIP endpoints"),
];

/// Endpoints asked about one by one, at most, per login.
const MAX_ENDPOINTS: usize = 256;

pub struct Ask {
    /// `ampere-ask-N-`: every ActionID of this login's questions starts so.
    prefix: String,
    endpoints: usize,
    denied: bool,
    /// chan_iax2 answered `IAXpeers`: it is loaded (and reports nothing on AMI).
    iax2: bool,
}

/// `IAXpeers`' place in `LISTS`.
const IAXPEERS: usize = 2;

impl Ask {
    pub fn new(seq: u64) -> Ask {
        Ask {
            prefix: format!("ampere-ask-{seq}-"),
            endpoints: 0,
            denied: false,
            iax2: false,
        }
    }

    /// The actions to send right after the login.
    pub fn actions(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (action, _)) in LISTS.iter().enumerate() {
            out.extend_from_slice(
                format!("Action: {action}\r\nActionID: {}{i}\r\n\r\n", self.prefix).as_bytes(),
            );
        }
        out
    }

    /// Which of the lists `m` answers, if it answers one at all.
    fn list_of(&self, m: &Message) -> Option<usize> {
        let id = m.get("ActionID")?.strip_prefix(self.prefix.as_bytes())?;
        match id {
            [d] if d.is_ascii_digit() && usize::from(d - b'0') < LISTS.len() => {
                Some(usize::from(d - b'0'))
            }
            // `e`: one endpoint's details.
            [b'e'] => Some(LISTS.len()),
            _ => None,
        }
    }

    /// A message of the session: an answer to one of the questions is looked at (an error
    /// explained, an endpoint without authentication asked about); actions to send next go
    /// to `out`.
    pub fn on_message(&mut self, m: &Message, out: &mut Vec<u8>) {
        let Some(list) = self.list_of(m) else {
            return;
        };
        if m.is_response() {
            match m.get("Response") {
                Some(r) if r.eq_ignore_ascii_case(b"Error") => {
                    self.refused(list, m.get("Message").unwrap_or(b""))
                }
                Some(r) if r.eq_ignore_ascii_case(b"Success") && list == IAXPEERS => {
                    self.iax2 = true
                }
                _ => {}
            }
            return;
        }
        if m.get("Event") == Some(b"EndpointList") && m.get("Auths").is_some_and(<[u8]>::is_empty) {
            // Without inbound authentication an endpoint is reached by address (a trunk):
            // its identify section says which.
            if let Some(name) = m.get("ObjectName").filter(|n| safe_name(n)) {
                if self.endpoints < MAX_ENDPOINTS {
                    self.endpoints += 1;
                    out.extend_from_slice(b"Action: PJSIPShowEndpoint\r\nActionID: ");
                    out.extend_from_slice(self.prefix.as_bytes());
                    out.extend_from_slice(b"e\r\nEndpoint: ");
                    out.extend_from_slice(name);
                    out.extend_from_slice(b"\r\n\r\n");
                }
            }
        }
    }

    /// Whether chan_iax2 answered at this login.
    pub fn iax2_loaded(&self) -> bool {
        self.iax2
    }

    fn refused(&mut self, list: usize, why: &[u8]) {
        let what = LISTS.get(list).map_or("an endpoint's details", |l| l.1);
        let action = LISTS.get(list).map_or("PJSIPShowEndpoint", |l| l.0);
        if why.eq_ignore_ascii_case(b"Permission denied") {
            if !std::mem::replace(&mut self.denied, true) {
                warn!(
                    "AMI refused `{action}` (Permission denied): give Ampere's AMI user `write = system` in manager.conf to let it learn at each login which phones are registered; until then it learns them from their logins only"
                );
            }
        } else {
            // Not loaded (`Invalid/unknown command`), or nothing of the kind.
            debug!("AMI: no {what}: {}", printable(why));
        }
    }
}

/// An endpoint name that can go back into an action: printable ASCII without blanks, at
/// most 80 bytes (Asterisk's own object name; never a line break, which the framer cannot
/// let through anyway).
fn safe_name(n: &[u8]) -> bool {
    !n.is_empty() && n.len() <= 80 && n.iter().all(|&b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_the_lists_and_for_each_endpoint_without_authentication() {
        let mut a = Ask::new(7);
        let text = String::from_utf8(a.actions()).unwrap();
        for (action, _) in LISTS {
            assert!(text.contains(&format!("Action: {action}\r\n")), "{text}");
        }
        assert_eq!(text.matches("ActionID: ampere-ask-7-").count(), LISTS.len());
        let mut out = Vec::new();
        let phone = Message::from_pairs(&[
            ("Event", b"EndpointList"),
            ("ActionID", b"ampere-ask-7-3"),
            ("ObjectName", b"1001"),
            ("Auths", b"1001-auth"),
        ]);
        a.on_message(&phone, &mut out);
        assert!(out.is_empty());
        let trunk = Message::from_pairs(&[
            ("Event", b"EndpointList"),
            ("ActionID", b"ampere-ask-7-3"),
            ("ObjectName", b"provider"),
            ("Auths", b""),
        ]);
        a.on_message(&trunk, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "Action: PJSIPShowEndpoint\r\nActionID: ampere-ask-7-e\r\nEndpoint: provider\r\n\r\n"
        );
        // Somebody else's list, and a name that cannot go into an action, ask nothing.
        out.clear();
        for (id, name) in [(&b"other-3"[..], &b"x"[..]), (b"ampere-ask-7-3", b"a b")] {
            let m = Message::from_pairs(&[
                ("Event", b"EndpointList"),
                ("ActionID", id),
                ("ObjectName", name),
                ("Auths", b""),
            ]);
            a.on_message(&m, &mut out);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn a_refusal_is_said_once() {
        let mut a = Ask::new(1);
        let denied = Message::from_pairs(&[
            ("Response", b"Error"),
            ("ActionID", b"ampere-ask-1-0"),
            ("Message", b"Permission denied"),
        ]);
        let mut out = Vec::new();
        a.on_message(&denied, &mut out);
        assert!(a.denied);
        a.on_message(&denied, &mut out);
        assert!(out.is_empty());
    }
}
