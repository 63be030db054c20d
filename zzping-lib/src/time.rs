//! UTC calendar arithmetic on µs timestamps (no time zone database needed).

/// Microseconds per second.
pub const US_PER_S: u64 = 1_000_000;
/// Microseconds per UTC day.
pub const US_PER_DAY: u64 = 86_400 * US_PER_S;

/// Civil (proleptic Gregorian) date of a day number (days since 1970-01-01).
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

/// Day number (days since 1970-01-01) of a civil date.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Start of the UTC day containing `t_us`.
pub fn day_start_us(t_us: u64) -> u64 {
    t_us - t_us % US_PER_DAY
}

/// `YYYY-MM-DD` of the UTC day containing `t_us`.
pub fn day_name(t_us: u64) -> String {
    let (y, m, d) = civil_from_days((t_us / US_PER_DAY) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` into the µs start of that UTC day.
pub fn parse_day_name(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i32 = s[0..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    Some(days as u64 * US_PER_DAY)
}

/// RFC 3339 UTC rendering with microseconds, e.g. `2021-01-01T08:00:00.123456Z`.
pub fn rfc3339_us(t_us: u64) -> String {
    let (y, mo, d) = civil_from_days((t_us / US_PER_DAY) as i64);
    let in_day = t_us % US_PER_DAY;
    let s = in_day / US_PER_S;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        in_day % US_PER_S
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(day_name(1_609_459_200_000_000), "2021-01-01");
        assert_eq!(parse_day_name("2021-01-01"), Some(1_609_459_200_000_000));
        assert_eq!(parse_day_name("2021-02-30"), None);
        assert_eq!(parse_day_name("2021-1-01"), None);
        assert_eq!(
            rfc3339_us(1_609_488_000_123_456),
            "2021-01-01T08:00:00.123456Z"
        );
    }

    proptest! {
        #[test]
        fn days_round_trip(days in 0i64..200_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
            let t = days as u64 * US_PER_DAY;
            prop_assert_eq!(parse_day_name(&day_name(t)), Some(t));
        }
    }
}
