//! Time on µs timestamps: UTC days (the day files), RFC 3339, and the time arguments of
//! the tools (`--from`, `--to`). Calendar work is `jiff`'s; nothing here reads a clock:
//! "now" and the time zone are handed in.

use jiff::civil::{Date, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp, Zoned};
use thiserror::Error;

/// Microseconds per second.
pub const US_PER_S: u64 = 1_000_000;
/// Microseconds per UTC day.
pub const US_PER_DAY: u64 = 86_400 * US_PER_S;

/// `t_us` as a `jiff` timestamp (saturating at jiff's maximum, year 9999).
pub fn timestamp(t_us: u64) -> Timestamp {
    i64::try_from(t_us)
        .ok()
        .and_then(|t| Timestamp::from_microsecond(t).ok())
        .unwrap_or(Timestamp::MAX)
}

/// µs since the epoch of `ts`, or `None` before 1970.
pub fn timestamp_us(ts: Timestamp) -> Option<u64> {
    u64::try_from(ts.as_microsecond()).ok()
}

/// The UTC date of `t_us`.
pub fn utc_date(t_us: u64) -> Date {
    Offset::UTC.to_datetime(timestamp(t_us)).date()
}

/// µs start of the UTC day `d`, or `None` before 1970.
pub fn utc_day_start_us(d: Date) -> Option<u64> {
    let ts = Offset::UTC
        .to_timestamp(d.to_datetime(Time::midnight()))
        .ok()?;
    timestamp_us(ts)
}

/// Start of the UTC day containing `t_us`.
pub fn day_start_us(t_us: u64) -> u64 {
    t_us - t_us % US_PER_DAY
}

/// `YYYY-MM-DD` of the UTC day containing `t_us`.
pub fn day_name(t_us: u64) -> String {
    utc_date(t_us).to_string()
}

/// Parses exactly `YYYY-MM-DD` (a day file's name) into the µs start of that UTC day;
/// `None` for anything else, an invalid date or a day before 1970.
pub fn parse_day_name(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !(digits(0..4) && digits(5..7)) {
        return None;
    }
    if !digits(8..10) {
        return None;
    }
    utc_day_start_us(s.parse().ok()?)
}

/// RFC 3339 UTC rendering with microseconds, e.g. `2021-01-01T08:00:00.123456Z`.
pub fn rfc3339_us(t_us: u64) -> String {
    format!("{:.6}", timestamp(t_us))
}

/// Parses an RFC 3339 timestamp (any offset; `jiff` also takes ISO 8601 forms such as a
/// space for `T`) into µs since the epoch; fractions beyond µs are truncated. `None` when
/// invalid or before 1970.
pub fn parse_rfc3339_us(s: &str) -> Option<u64> {
    timestamp_us(s.parse().ok()?)
}

/// Why a time argument was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TimeArgError {
    /// Not one of the accepted forms.
    #[error(
        "expected a time: RFC 3339 (2026-11-22T08:00:00Z), a date (2026-11-22, UTC), now, \
         today, yesterday, or a time ago (-2h, -1w, -2h30m, \"3 days ago\")"
    )]
    Unrecognised,
    /// A span without a minus sign or `ago`: the future is not a time range of recorded
    /// data.
    #[error("a relative time is in the past: write -{0} or \"{0} ago\"")]
    Future(String),
    /// Before 1970, or beyond what can be represented.
    #[error("out of range (1970 to 9999)")]
    OutOfRange,
}

/// Parses a time argument (`--from`, `--to`) into µs since the epoch:
/// - RFC 3339 (`2026-11-22T08:00:00Z`, any offset);
/// - a date `YYYY-MM-DD`: that day's midnight UTC (the day files are UTC days);
/// - `now`; `today` and `yesterday`: the start of that day in `tz`;
/// - a time ago in `jiff`'s span syntax: `-2h`, `-30m`, `-1w`, `-2h30m`, `-1.5h`, `3 days
///   ago`, `-P1D`. Days and weeks are calendar days in `tz`.
pub fn parse_time_arg(s: &str, now_us: u64, tz: &TimeZone) -> Result<u64, TimeArgError> {
    let s = s.trim();
    let now = || Zoned::new(timestamp(now_us), tz.clone());
    let day_start = |days_back: i64| -> Result<u64, TimeArgError> {
        let d = now().date().checked_sub(Span::new().days(days_back));
        let z = d
            .and_then(|d| d.to_zoned(tz.clone()))
            .map_err(|_| TimeArgError::OutOfRange)?;
        timestamp_us(z.timestamp()).ok_or(TimeArgError::OutOfRange)
    };
    match s {
        "now" => return Ok(now_us),
        "today" => return day_start(0),
        "yesterday" => return day_start(1),
        _ => {}
    }
    if let Some(day) = parse_day_name(s) {
        return Ok(day);
    }
    if let Ok(ts) = s.parse::<Timestamp>() {
        return timestamp_us(ts).ok_or(TimeArgError::OutOfRange);
    }
    let span: Span = s.parse().map_err(|_| TimeArgError::Unrecognised)?;
    if span.is_positive() {
        return Err(TimeArgError::Future(s.to_string()));
    }
    let t = now()
        .checked_add(span)
        .map_err(|_| TimeArgError::OutOfRange)?;
    timestamp_us(t.timestamp()).ok_or(TimeArgError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2021-01-01T08:00:00.123456Z.
    const T0: u64 = 1_609_488_000_123_456;

    #[test]
    fn known_dates() {
        assert_eq!(day_name(1_609_459_200_000_000), "2021-01-01");
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(parse_day_name("2021-01-01"), Some(1_609_459_200_000_000));
        for bad in [
            "2021-02-30",
            "2021-1-01",
            "20210101",
            "1969-12-31",
            "2021-01-01T00",
        ] {
            assert_eq!(parse_day_name(bad), None, "{bad}");
        }
        assert_eq!(rfc3339_us(T0), "2021-01-01T08:00:00.123456Z");
        assert_eq!(rfc3339_us(T0 - 123_456), "2021-01-01T08:00:00.000000Z");
    }

    #[test]
    fn rfc3339_parsing() {
        assert_eq!(
            parse_rfc3339_us("2021-01-01T08:00:00.123456+00:00"),
            Some(T0)
        );
        assert_eq!(parse_rfc3339_us("2021-01-01T08:00:00.123456Z"), Some(T0));
        assert_eq!(
            parse_rfc3339_us("2021-01-01T09:30:00.123456+01:30"),
            Some(T0)
        );
        assert_eq!(parse_rfc3339_us("2021-01-01T08:00:00Z"), Some(T0 - 123_456));
        assert_eq!(
            parse_rfc3339_us("2021-01-01T08:00:00.1Z"),
            Some(T0 - 23_456)
        );
        // Nanoseconds are truncated to µs.
        assert_eq!(parse_rfc3339_us("2021-01-01T08:00:00.123456999Z"), Some(T0));
        for bad in [
            "",
            "2021-01-01",
            "2021-02-30T00:00:00Z",
            "2021-01-01T08:00:00",
            "2021-01-01T08:00:00.Z",
            "2021-01-01T25:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339_us(bad), None, "{bad}");
        }
    }

    #[test]
    fn time_arguments() {
        // 2021-01-01T08:00:00.123456Z is 17:00 in Tokyo (UTC+9, no DST).
        let tokyo = TimeZone::fixed(jiff::tz::offset(9));
        let utc = TimeZone::UTC;
        let h = 3_600_000_000u64;
        let p = |s: &str| parse_time_arg(s, T0, &utc);
        assert_eq!(p("now"), Ok(T0));
        assert_eq!(p("-2h"), Ok(T0 - 2 * h));
        assert_eq!(p("-30m"), Ok(T0 - h / 2));
        assert_eq!(p("-45s"), Ok(T0 - 45_000_000));
        assert_eq!(p("-7d"), Ok(T0 - 7 * 24 * h));
        assert_eq!(p("-1w"), Ok(T0 - 7 * 24 * h));
        assert_eq!(p("-2h30m"), Ok(T0 - 5 * h / 2));
        assert_eq!(p("1 day ago"), Ok(T0 - 24 * h));
        assert_eq!(p("  -1.5h "), Ok(T0 - 3 * h / 2));
        assert_eq!(p("2021-01-01T09:00:00.5+01:00"), Ok(T0 - 123_456 + 500_000));
        assert_eq!(p("2021-01-01"), Ok(T0 - 8 * h - 123_456));
        assert_eq!(p("today"), Ok(T0 - 8 * h - 123_456));
        assert_eq!(p("yesterday"), Ok(T0 - 32 * h - 123_456));
        // In Tokyo, today began at 2021-01-01T00:00+09:00 = 2020-12-31T15:00Z; a date
        // stays UTC midnight.
        let q = |s: &str| parse_time_arg(s, T0, &tokyo);
        assert_eq!(q("today"), Ok(T0 - 17 * h - 123_456));
        assert_eq!(q("yesterday"), Ok(T0 - 41 * h - 123_456));
        assert_eq!(q("2021-01-01"), Ok(T0 - 8 * h - 123_456));
        assert_eq!(q("-1w"), Ok(T0 - 7 * 24 * h));
        assert!(matches!(p("2h"), Err(TimeArgError::Future(s)) if s == "2h"));
        for bad in ["-2x", "", "-", "soon", "2021-13-01"] {
            assert_eq!(p(bad), Err(TimeArgError::Unrecognised), "{bad}");
        }
        assert_eq!(p("1969-12-31T00:00:00Z"), Err(TimeArgError::OutOfRange));
        assert_eq!(p("-100y"), Err(TimeArgError::OutOfRange));
        assert!(p("-2x").unwrap_err().to_string().contains("-2h"));
    }

    #[test]
    fn time_ago_follows_the_calendar_across_dst() {
        // Berlin left summer time in the night to 2021-10-31: "1 day ago" from noon on
        // Oct 31 is noon on Oct 30, 25 hours earlier.
        // Central European rules as a POSIX TZ string: no time zone database needed.
        let berlin = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let noon = parse_rfc3339_us("2021-10-31T12:00:00+01:00").unwrap();
        assert_eq!(
            parse_time_arg("-1d", noon, &berlin),
            Ok(noon - 25 * 3_600_000_000)
        );
    }

    proptest! {
        #[test]
        fn days_round_trip(days in 0u64..2_900_000) {
            let t = days * US_PER_DAY;
            prop_assert_eq!(parse_day_name(&day_name(t)), Some(t));
            prop_assert_eq!(parse_rfc3339_us(&rfc3339_us(t + 1_234_567)), Some(t + 1_234_567));
        }
    }
}
