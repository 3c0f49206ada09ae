//! Wall-clock time as Ampere uses it: unix seconds for ban expiry (they survive a restart),
//! and one way to show them to a person. Scoring uses the monotonic clock instead.

// AtomicI32 and not AtomicI64: 32-bit MIPS has no 64-bit atomics; ±68 years of offset is plenty.
use std::sync::atomic::{AtomicI32, Ordering};

use crate::sys;

/// The date of this source (2026-11-01). A wall clock before it has not been set yet: a
/// router without a real-time clock boots in 1970 and learns the time from NTP later. Until
/// then no ban expires and the kernel gets no timeouts (they would be measured against
/// 1970); bans made meanwhile are re-timed when the clock jumps (`Bans::clock_was_set`).
pub const NOT_BEFORE: i64 = 1_793_491_200;

pub fn is_set(epoch: i64) -> bool {
    epoch >= NOT_BEFORE
}

/// A test's clock: seconds added to every reading of the wall clock and of the daemon's
/// scoring clock (`mono_secs`), so that a test plays an hour without waiting for it. Set
/// only by `read_test_clock`, which does nothing unless `AMPERE_TEST_CLOCK` names a file.
static OFFSET: AtomicI32 = AtomicI32::new(0);

fn offset() -> i64 {
    i64::from(OFFSET.load(Ordering::Relaxed))
}

/// With `AMPERE_TEST_CLOCK=FILE` in the environment, reads the offset (seconds, a decimal
/// number) from FILE: the daemon calls it once per turn of its loop. Without it (any real
/// use) nothing is read and the clocks are the system's.
pub fn read_test_clock() {
    static PATH: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(path) = PATH.get_or_init(|| std::env::var_os("AMPERE_TEST_CLOCK").map(Into::into))
    else {
        return;
    };
    let mut text = [0u8; 32];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut text))
        .unwrap_or(0);
    if let Some(secs) = std::str::from_utf8(&text[..n])
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    {
        OFFSET.store(secs, Ordering::Relaxed);
    }
}

/// The seconds since `started` on the scoring clock (monotonic, plus a test's offset).
pub fn mono_secs(started: std::time::Instant) -> u64 {
    started.elapsed().as_secs().saturating_add_signed(offset())
}

/// The wall clock in unix milliseconds, for timers that must not fire a second late.
pub fn now_epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        .saturating_add(offset().saturating_mul(1000))
}

pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        .saturating_add(offset())
}

/// `YYYY-MM-DD HH:MM:SS` in local time (the admin's TZ or /etc/localtime).
pub fn format_time(epoch: i64) -> String {
    let t = sys::local_time(epoch);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.min, t.sec
    )
}

/// A length of time as a person writes it in the config: `28d`, `6h`, `10m`, `90s`.
pub fn span(secs: u64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Days since the epoch of a UTC civil date (Howard Hinnant's days-from-civil), used to
/// read Asterisk's `EventTV` in replays.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC), as CrowdSec's API takes times.
pub fn utc_rfc3339(epoch: i64) -> String {
    let t = sys::utc_time(epoch);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.min, t.sec
    )
}

/// Seconds a ban ending at `expires` has left at `now` (at least one; None = permanent).
pub fn remaining(expires: Option<i64>, now: i64) -> Option<u64> {
    expires.map(|e| (e - now).max(1) as u64)
}

/// Seconds since the epoch of an AMI `EventTV` such as `2026-11-23T08:41:22.264+0000`
/// (the fraction is dropped; an optional UTC offset is applied). Read digit by digit:
/// `--replay` calls it for every event.
pub fn event_tv(v: &[u8]) -> Option<u64> {
    let head: &[u8; 19] = v.get(..19)?.try_into().ok()?;
    let two = |i: usize| two_digits(head[i], head[i + 1]);
    let (y, mo, d) = (two(0)? * 100 + two(2)?, two(5)?, two(8)?);
    let (h, mi, se) = (two(11)?, two(14)?, two(17)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut t = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se;
    if let Some(pos) = v[19..].iter().position(|&c| c == b'+' || c == b'-') {
        let off = &v[19 + pos..];
        let sign = if off[0] == b'-' { -1 } else { 1 };
        let (oh, om) = match off {
            [_, a, b, c, d, ..] => (two_digits(*a, *b)?, two_digits(*c, *d)?),
            _ => return None,
        };
        t -= sign * (oh * 3600 + om * 60);
    }
    u64::try_from(t).ok()
}

/// Two ASCII digits as a number; None if either is something else.
/// `event_tv` of a stream of events, which share their minute with the event before nearly
/// always: the minute (date, hour, minute and UTC offset) read once, then only the
/// seconds. A replay read EventTV for every event, and that was a tenth of its time.
#[derive(Default)]
pub struct EventClock {
    /// `YYYY-MM-DDTHH:MM` and the `+HHMM`/`-HHMM` at the end, and the minute's start.
    minute: [u8; 16],
    offset: [u8; 5],
    base: i64,
    valid: bool,
}

impl EventClock {
    /// As `event_tv(v)`, always.
    pub fn read(&mut self, v: &[u8]) -> Option<u64> {
        let n = v.len();
        // The everyday form: 19 characters, a fraction without signs, an offset at the end.
        let everyday = n >= 24
            && v[16] == b':'
            && matches!(v[n - 5], b'+' | b'-')
            && !v[19..n - 5].iter().any(|&c| c == b'+' || c == b'-');
        if everyday && self.valid && v[..16] == self.minute && v[n - 5..] == self.offset {
            let se = two_digits(v[17], v[18]).filter(|&s| s <= 60)?;
            return u64::try_from(self.base + se).ok();
        }
        let t = event_tv(v)?;
        self.valid = everyday;
        if everyday {
            self.minute.copy_from_slice(&v[..16]);
            self.offset.copy_from_slice(&v[n - 5..]);
            self.base = t as i64 - two_digits(v[17], v[18]).unwrap_or(0);
        }
        Some(t)
    }
}

fn two_digits(a: u8, b: u8) -> Option<i64> {
    let (a, b) = (a.wrapping_sub(b'0'), b.wrapping_sub(b'0'));
    (a < 10 && b < 10).then(|| i64::from(a * 10 + b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_clock_agrees_with_event_tv() {
        let mut c = EventClock::default();
        let mut seed = 0x2545_f491u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let base = b"2026-11-23T08:41:22.264+0000".to_vec();
        for i in 0..200_000u32 {
            let mut v = base.clone();
            // Mostly the next second of the same minute; now and then a change anywhere.
            let s = i % 61;
            v[17] = b'0' + (s / 10) as u8;
            v[18] = b'0' + (s % 10) as u8;
            if next() % 7 == 0 {
                let at = next() as usize % v.len();
                v[at] = b"0123456789+-:.TZx"[next() as usize % 17];
            }
            if next() % 31 == 0 {
                v.truncate(next() as usize % (v.len() + 1));
            }
            assert_eq!(c.read(&v), event_tv(&v), "{}", String::from_utf8_lossy(&v));
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29) * 86_400, 951_782_400);
        assert_eq!(days_from_civil(2026, 11, 23), 20_780);
        assert_eq!(utc_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400 + 3723), "2000-02-29T01:02:03Z");
        assert_eq!(utc_rfc3339(1_795_491_445), "2026-11-24T03:37:25Z");
        for d in [-1000i64, 0, 11_016, 20_780, 100_000] {
            let t = utc_rfc3339(d * 86_400);
            let (y, m, day) = (&t[0..4], &t[5..7], &t[8..10]);
            assert_eq!(
                days_from_civil(y.parse().unwrap(), m.parse().unwrap(), day.parse().unwrap()),
                d
            );
        }
    }

    #[test]
    fn the_clock_is_set_from_the_date_of_this_source_on() {
        assert_eq!(NOT_BEFORE, days_from_civil(2026, 11, 1) * 86_400);
        assert!(!is_set(60) && !is_set(NOT_BEFORE - 1) && is_set(NOT_BEFORE));
        assert!(is_set(now_epoch()), "this machine's clock");
    }

    #[test]
    fn remaining_is_at_least_a_second() {
        assert_eq!(remaining(None, 5), None);
        assert_eq!(remaining(Some(100), 40), Some(60));
        assert_eq!(remaining(Some(100), 400), Some(1));
    }

    #[test]
    fn event_tv_parses_with_offset() {
        assert_eq!(event_tv(b"1970-01-01T00:00:00.000+0000"), Some(0));
        assert_eq!(
            event_tv(b"2026-11-23T08:41:22.264+0000"),
            Some(1_795_423_282)
        );
        assert_eq!(
            event_tv(b"2026-11-23T09:41:22.264+0100"),
            Some(1_795_423_282)
        );
        assert_eq!(event_tv(b"2026-11-23T08:41:22"), Some(1_795_423_282));
        assert_eq!(event_tv(b"2026-13-23T08:41:22.264+0000"), None);
        assert_eq!(event_tv(b"garbage"), None);
        assert_eq!(event_tv(b"\xff\xfe"), None);
        // Signs where digits belong are not numbers.
        assert_eq!(event_tv(b"2026-+1-23T08:41:22.264+0000"), None);
        assert_eq!(event_tv(b"2026-11-23T08:41:22.264+0x00"), None);
    }
}
