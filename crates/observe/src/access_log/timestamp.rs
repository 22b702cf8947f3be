//! Timestamps for log lines, formatted from `SystemTime` without a date library: RFC 3339 UTC with
//! milliseconds, and the Common Log Format's `08/Dec/2026:10:15:00 +0000`.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `time` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339 §5.6, UTC). Times before 1970, which only a broken
/// clock produces, are written as the epoch rather than failing.
pub(crate) fn write_rfc3339_millis(out: &mut String, time: SystemTime) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let second_of_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60,
        since_epoch.subsec_millis(),
    );
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Appends `time` as the Common Log Format writes it (nginx's `$time_local`), in UTC:
/// `DD/Mon/YYYY:HH:MM:SS +0000`.
pub(crate) fn write_common_log_time(out: &mut String, time: SystemTime) {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let second_of_day = secs % 86_400;
    let _ = write!(
        out,
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60,
    );
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>), restricted to days >= 0.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era's years.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn format(secs: u64, millis: u64) -> String {
        let mut out = String::new();
        let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        write_rfc3339_millis(&mut out, t);
        out
    }

    #[test]
    fn known_instants() {
        assert_eq!(format(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(format(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(format(1_709_251_200, 0), "2024-03-01T00:00:00.000Z");
        assert_eq!(format(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
        assert_eq!(format(253_402_300_799, 0), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn common_log_format_times() {
        let at = |secs: u64| {
            let mut out = String::new();
            write_common_log_time(
                &mut out,
                UNIX_EPOCH + Duration::from_millis(secs * 1000 + 999),
            );
            out
        };
        assert_eq!(at(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(at(1_700_000_000), "14/Nov/2023:22:13:20 +0000");
        assert_eq!(at(1_709_251_199), "29/Feb/2024:23:59:59 +0000");
        assert_eq!(at(1_733_616_000 + 31_536_000), "08/Dec/2025:00:00:00 +0000");
    }

    #[test]
    fn before_the_epoch_is_clamped() {
        let mut out = String::new();
        write_rfc3339_millis(&mut out, UNIX_EPOCH - Duration::from_secs(10));
        assert_eq!(out, "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walk 1970..2400 day by day and check the calendar never skips or repeats.
        let mut prev = civil_from_days(0);
        for days in 1..157_000 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = prev;
            let next_day = (y, m, d) == (py, pm, pd + 1);
            let next_month = (y, m, d) == (py, pm + 1, 1);
            let next_year = (y, m, d) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(
                next_day || next_month || next_year,
                "{prev:?} -> {:?}",
                (y, m, d)
            );
            prev = (y, m, d);
        }
    }
}
