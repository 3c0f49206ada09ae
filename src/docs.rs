//! The parts of the documents that lists make: written from the tables (`kinds::KINDS`, the
//! config keys), never by hand. Each block sits in its file between two marker lines
//! (`generated: NAME` and `end: NAME`, in the file's comment syntax); `tests/docs.rs` fails
//! when a block differs from what these functions write, and `make docs` rewrites them.

use crate::kinds::{Kind, KINDS, SYSTEM_EVENTS};
use crate::score::{Weight, UNIT};

mod config;
pub use config::{man_configuration, markdown_configuration, sample_config, PROFILES, SECTIONS};

/// A generated block: the file it lives in, its name (the markers'), and its text.
pub struct Block {
    pub file: &'static str,
    pub name: &'static str,
    pub text: String,
}

/// Every generated block of the repository.
pub fn blocks() -> Vec<Block> {
    let mut v = vec![
        Block {
            file: "README.md",
            name: "event-kinds",
            text: readme_kinds(),
        },
        Block {
            file: "etc/manager.conf.ampere",
            name: "eventfilter",
            text: eventfilter(),
        },
        Block {
            file: "doc/ampere.8",
            name: "configuration",
            text: man_configuration(),
        },
        Block {
            file: "doc/configuration.md",
            name: "keys",
            text: markdown_configuration(),
        },
    ];
    for p in &PROFILES {
        v.push(Block {
            file: p.file,
            name: "keys",
            text: sample_config(p),
        });
    }
    v
}

/// The marker lines of block `name` in `file`'s comment syntax.
pub fn markers(file: &str, name: &str) -> (String, String) {
    let (open, close) = if file.ends_with(".md") {
        ("<!-- ", " -->")
    } else if file.ends_with(".8") {
        (".\\\" ", "")
    } else if file.ends_with(".conf.ampere") {
        ("; ", "")
    } else {
        ("# ", "")
    };
    (
        format!("{open}generated: {name} (`make docs` writes it from the tables){close}"),
        format!("{open}end: {name}{close}"),
    )
}

/// A weight as a person reads it.
fn weight_text(w: Weight) -> String {
    match w {
        Weight::Clear => "clears".to_string(),
        Weight::Add { base: 0, bump: 0 } => "ignored".to_string(),
        Weight::Add { base, bump } if base == bump => format!("+{base}"),
        Weight::Add { base, bump } => {
            format!(
                "+{base}, or +{bump} when the penalty % {UNIT} == {}",
                UNIT - 1
            )
        }
    }
}

fn sent_by(k: &Kind) -> String {
    if k.sent_by.is_empty() {
        "none of PJSIP, chan_sip, AMI, chan_iax2".to_string()
    } else {
        k.sent_by
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The README's table of event kinds.
pub fn readme_kinds() -> String {
    let mut o = String::from(
        "| event | weight | sent by | evidence | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for k in &KINDS {
        o.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            k.name,
            weight_text(k.weight),
            sent_by(k),
            k.evidence,
            k.meaning
        ));
    }
    o
}

/// manager.conf's `eventfilter` lines: the regex form every Asterisk reads, and the
/// name-based form of newer ones (commented: one form at a time).
pub fn eventfilter() -> String {
    let names: Vec<&str> = KINDS
        .iter()
        .filter(|k| k.on_ami())
        .map(|k| k.name)
        .chain(SYSTEM_EVENTS.iter().map(|(n, _)| *n))
        .collect();
    let mut o = String::new();
    for n in &names {
        o.push_str(&format!("eventfilter = Event: {n}\n"));
    }
    o.push_str(
        "; Asterisk 20.10, 21.5, 22.0 and later also take filters by name, matched without a\n\
         ; regex over every event: replace the lines above with these.\n",
    );
    for n in &names {
        o.push_str(&format!(";eventfilter(action(include),name({n})) =\n"));
    }
    o
}

/// The man page's list of event kinds under `weight.Event`.
pub fn man_kinds() -> String {
    let mut o = String::from(".RS\n");
    for k in &KINDS {
        o.push_str(&format!(
            ".IP \"\\fB{}\\fR\"\n{}: {}.\n",
            k.name,
            weight_text(k.weight),
            k.meaning
        ));
    }
    o.push_str(".RE\n");
    o
}

/// The sample configs' weight lines, each with what it means.
pub fn config_weights() -> String {
    let mut o = String::new();
    for k in &KINDS {
        let w = match k.weight {
            Weight::Clear => "clear".to_string(),
            w => w.to_string(),
        };
        o.push_str(&commented(
            &format!("weight.{} = {w}", k.name),
            k.meaning,
            40,
        ));
    }
    o
}

/// Where a sample config's comments start, as a rule.
pub const COMMENT_AT: usize = 28;
/// The width of a sample config's lines.
const WIDTH: usize = 92;

/// `# key = value` and `; text` after it at column `at`, wrapped to `WIDTH` with the
/// continuation lines' `;` under the first; a setting too long for `at` gets a line of its
/// own.
pub fn commented(setting: &str, text: &str, at: usize) -> String {
    let head = format!("# {setting}");
    let indent = format!("#{:<width$}; ", "", width = at - 1);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = if head.len() < at {
        format!("{head:<width$}; ", width = at)
    } else {
        lines.push(head);
        indent.clone()
    };
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && cur.len() + 1 + word.len() > WIDTH {
            lines.push(std::mem::replace(&mut cur, indent.clone()));
            empty = true;
        }
        if !empty {
            cur.push(' ');
        }
        cur.push_str(word);
        empty = false;
    }
    lines.push(cur);
    let mut o = lines.join("\n");
    o.push('\n');
    o
}

/// `text` with the block `name` replaced by `body` (markers kept), or None when the file
/// has no such markers.
pub fn replace_block(text: &str, file: &str, name: &str, body: &str) -> Option<String> {
    let (open, close) = markers(file, name);
    let start = text.find(&open)? + open.len();
    let start = start + text[start..].find('\n')? + 1;
    let end = start + text[start..].find(&close)?;
    Some(format!("{}{body}{}", &text[..start], &text[end..]))
}

/// The block `name` of `text` as it stands.
pub fn current_block<'a>(text: &'a str, file: &str, name: &str) -> Option<&'a str> {
    let (open, close) = markers(file, name);
    let start = text.find(&open)? + open.len();
    let start = start + text[start..].find('\n')? + 1;
    let end = start + text[start..].find(&close)?;
    Some(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_wrap_under_the_first() {
        let t = commented(
            "weight.InvalidAccountID = 5",
            "an account that does not exist (extension scanning); on strong evidence it bans a host that never logged in at once",
            40,
        );
        for l in t.lines() {
            assert!(l.len() <= WIDTH, "{l}");
            assert_eq!(l.find(';'), Some(40), "{l}");
        }
        assert!(t.starts_with("# weight.InvalidAccountID = 5           ; an account"));
        // Too long for its column: a line of its own.
        let t = commented("a_very_long_key_name = something", "why", COMMENT_AT);
        assert_eq!(
            t,
            format!("# a_very_long_key_name = something\n#{:27}; why\n", "")
        );
    }

    #[test]
    fn a_block_is_replaced_between_its_markers() {
        let (open, close) = markers("x.md", "t");
        let text = format!("a\n{open}\nold\n{close}\nb\n");
        let new = replace_block(&text, "x.md", "t", "new\n").unwrap();
        assert_eq!(new, format!("a\n{open}\nnew\n{close}\nb\n"));
        assert_eq!(current_block(&new, "x.md", "t"), Some("new\n"));
        assert_eq!(replace_block("none", "x.md", "t", ""), None);
    }
}
