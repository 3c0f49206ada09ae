//! Parsers for the kinds of values config keys take. Each error names the offending text.

use crate::error::Invalid;
use std::path::PathBuf;

pub fn number(v: &str, min: u64, max: u64) -> Result<u64, Invalid> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}, not `{v}`").into()),
    }
}

/// Seconds, with an optional unit: `90`, `90s`, `10m`, `2h`, `1d`.
pub fn duration(v: &str, min: u64) -> Result<u64, Invalid> {
    let (digits, mult) = match v.as_bytes().last() {
        Some(b's') => (&v[..v.len() - 1], 1),
        Some(b'm') => (&v[..v.len() - 1], 60),
        Some(b'h') => (&v[..v.len() - 1], 3600),
        Some(b'd') => (&v[..v.len() - 1], 86_400),
        _ => (v, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n >= min && n <= 10 * 365 * 86_400)
        .ok_or_else(|| {
            Invalid(format!(
                "expected a duration such as 90, 90s, 10m, 2h or 1d, not `{v}`"
            ))
        })
}

/// A DNS host name as `trust` takes it, lower-cased: at least two labels of letters, digits
/// and `-`, the last one with a letter, so that a mistyped address (`192.168.1.300`) or a
/// stray word is an error rather than a name that never resolves.
pub fn host_name(v: &str) -> Option<String> {
    let v = v.strip_suffix('.').unwrap_or(v);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let last = v.rsplit('.').next()?;
    let ok = v.len() <= 253
        && v.contains('.')
        && v.split('.').all(label_ok)
        && last.bytes().any(|b| b.is_ascii_alphabetic());
    ok.then(|| v.to_ascii_lowercase())
}

pub fn boolean(v: &str) -> Result<bool, Invalid> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, not `{v}`").into()),
    }
}

/// iptables limits chain names to 28 characters; we also keep them to characters that can
/// never be read as an option or need quoting anywhere.
pub fn chain_name(v: &str) -> Result<String, Invalid> {
    let ok = !v.is_empty()
        && v.len() <= 28
        && !v.starts_with('-')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "`{v}` is not a valid chain name (1-28 of A-Z a-z 0-9 - _, not starting with -)"
        )
        .into())
    }
}

pub fn command_path(v: &str) -> Result<PathBuf, Invalid> {
    if v.starts_with('/') {
        Ok(PathBuf::from(v))
    } else {
        Err(format!("must be an absolute path, not `{v}`").into())
    }
}

/// `off`, or a per-source rate: `10/s`, `10/s burst 20` (burst defaults to twice the rate).
/// A rate as `rate` reads it.
pub fn rate_text(r: Option<(u32, u32)>) -> String {
    match r {
        Some((per_sec, burst)) => format!("{per_sec}/s burst {burst}"),
        None => "off".to_string(),
    }
}

pub fn rate(v: &str) -> Result<Option<(u32, u32)>, Invalid> {
    if matches!(v.to_ascii_lowercase().as_str(), "off" | "no" | "0") {
        return Ok(None);
    }
    let bad = || {
        Invalid::from(format!(
            "expected `off` or a rate such as `10/s burst 20`, not `{v}`"
        ))
    };
    let mut words = v.split_whitespace();
    let per_sec = words
        .next()
        .and_then(|r| r.strip_suffix("/s"))
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=100_000).contains(n))
        .ok_or_else(bad)?;
    let burst = match (words.next(), words.next()) {
        (None, _) => per_sec.saturating_mul(2),
        (Some(w), Some(n)) if w.eq_ignore_ascii_case("burst") => n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if words.next().is_some() {
        return Err(bad());
    }
    Ok(Some((per_sec, burst)))
}
