//! How durations, times and tables look to a person. Pure: the clock and the time zone are
//! passed in, so every format is unit-tested.
//!
//! Text that came from someone else (a requester's reason, a subject, CI claims) goes through
//! [`clean`] before it reaches a terminal: an approver's screen must show what was asked, not
//! what escape sequences in it would draw.

use chrono::{DateTime, TimeZone};
use std::borrow::Cow;
use std::fmt::Write as _;

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An exact duration, largest units first, zeros left out: `8h`, `1h30m`, `1m30s`, `0s`.
/// Used for TTLs, which the person typed in the same form.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if s > 0 || out.is_empty() {
        let _ = write!(out, "{s}s");
    }
    out
}

/// A rounded-down duration for "how long until / since": `45s`, `29m`, `1h05m`.
pub fn approx(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `in 29m` or `3m ago`, from seconds since the epoch.
pub fn relative(at: u64, now: u64) -> String {
    if at >= now {
        format!("in {}", approx(at - now))
    } else {
        format!("{} ago", approx(now - at))
    }
}

/// `3m ago`, or `just now` for a time not yet past (clocks a second apart).
pub fn ago(at: u64, now: u64) -> String {
    if at >= now {
        "just now".to_string()
    } else {
        format!("{} ago", approx(now - at))
    }
}

/// The wall-clock time of `at` in the local time zone: `14:32` today, `2026-03-04 14:32`
/// another day.
pub fn clock(at: u64, now: u64) -> String {
    clock_in(at, now, &chrono::Local)
}

/// [`clock`] in a given time zone.
pub fn clock_in<Tz: TimeZone>(at: u64, now: u64, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let (Some(at), Some(now)) = (utc(at), utc(now)) else {
        return "?".to_string();
    };
    let (at, now) = (at.with_timezone(tz), now.with_timezone(tz));
    if at.date_naive() == now.date_naive() {
        at.format("%H:%M").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M").to_string()
    }
}

fn utc(secs: u64) -> Option<DateTime<chrono::Utc>> {
    DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)
}

/// Text from elsewhere made safe for a terminal: control characters (escape sequences, carriage
/// returns, new lines) and invisible characters that change how the rest reads (bidirectional
/// overrides, zero-width characters) are shown as `\u{..}` instead of being interpreted.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Characters a terminal would act on, or that would make the text read differently from what
/// it is: controls, and the invisible bidi and zero-width ones ("Trojan Source" tricks, which
/// matter most in SQL an approver is asked to let run).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// At most `max` characters of `s` (cleaned), ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= max {
        return s.into_owned();
    }
    let kept: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// A plain-text table: a header row and left-aligned columns two spaces apart; the last column
/// is not padded, so long reasons do not push trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_what_people_type() {
        assert_eq!(duration(8 * 3600), "8h");
        assert_eq!(duration(30 * 60), "30m");
        assert_eq!(duration(5400), "1h30m");
        assert_eq!(duration(90), "1m30s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(3601), "1h1s");
    }

    #[test]
    fn relative_times_round_down() {
        assert_eq!(relative(1_000 + 29 * 60 + 59, 1_000), "in 29m");
        assert_eq!(relative(1_000, 1_000 + 3 * 60 + 5), "3m ago");
        assert_eq!(relative(1_000, 1_000), "in 0s");
        assert_eq!(relative(10_000 + 3900, 10_000), "in 1h05m");
        assert_eq!(ago(1_000, 1_000), "just now");
        assert_eq!(ago(1_001, 1_000), "just now");
        assert_eq!(ago(1_000, 1_120), "2m ago");
    }

    #[test]
    fn clock_shows_the_date_only_on_another_day() {
        // 2026-03-04 14:32:10 UTC.
        let at = 1_772_634_730;
        assert_eq!(clock_in(at, at - 3600, &chrono::Utc), "14:32");
        assert_eq!(clock_in(at, at - 86_400, &chrono::Utc), "2026-03-04 14:32");
        let plus2 = chrono::FixedOffset::east_opt(2 * 3600).expect("offset");
        assert_eq!(clock_in(at, at, &plus2), "16:32");
    }

    #[test]
    fn control_characters_are_shown_not_interpreted() {
        assert_eq!(clean("fix invoice 4411"), "fix invoice 4411");
        assert_eq!(
            clean("ok\x1b[2J\r\nApproved"),
            "ok\\u{1b}[2J\\u{d}\\u{a}Approved"
        );
        // A right-to-left override would make `where id = 1` display as something else.
        assert_eq!(
            clean("where a = 1 \u{202e}-- x"),
            "where a = 1 \\u{202e}-- x"
        );
        assert_eq!(clean("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(clean("héllo 日本"), "héllo 日本");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("ab cdef", 4), "ab…");
    }

    #[test]
    fn tables_align_columns_and_leave_the_last_unpadded() {
        let out = table(
            &["ID", "STATE", "REASON"],
            &[
                vec!["g_1".into(), "active".into(), "deploy".into()],
                vec!["g_12345".into(), "denied".into(), "".into()],
            ],
        );
        assert_eq!(
            out,
            "ID       STATE   REASON\ng_1      active  deploy\ng_12345  denied\n"
        );
    }
}
