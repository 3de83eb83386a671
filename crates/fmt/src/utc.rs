//! [`Utc`]: UTC calendar dates and times of day from Unix seconds, in the
//! proleptic Gregorian calendar.

const SECS_PER_DAY: i64 = 86_400;

/// A UTC date and time of day, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    /// The year (proleptic Gregorian; 0 is 1 BC).
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
    /// The day of the week, 0 for Monday to 6 for Sunday.
    pub weekday: u32,
}

impl Utc {
    /// The UTC date and time `secs` seconds after 1970-01-01T00:00:00Z
    /// (before it when negative).
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(SECS_PER_DAY);
        let rem = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // Every value is below 86,400 or 7 here, so the conversions are exact.
        let small = |v: i64| u32::try_from(v).unwrap_or(0);
        Self {
            year,
            month,
            day,
            hour: small(rem / 3_600),
            minute: small(rem % 3_600 / 60),
            second: small(rem % 60),
            // 1970-01-01 was a Thursday (3 counting from Monday).
            weekday: small((days + 3).rem_euclid(7)),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339).
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The (year, month, day) of a count of days since 1970-01-01: Howard
/// Hinnant's `civil_from_days` (eras of 400 years, years starting in March
/// so that the leap day comes last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // `doy` < 366 and `mp` < 12, so these fit.
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(0);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(0);
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_and_times() {
        for (secs, text, weekday) in [
            (0, "1970-01-01T00:00:00Z", 3),
            (-1, "1969-12-31T23:59:59Z", 2),
            (315_532_800, "1980-01-01T00:00:00Z", 1),
            (951_782_400, "2000-02-29T00:00:00Z", 1),
            (1_700_000_000, "2023-11-14T22:13:20Z", 1),
            (4_102_444_799, "2099-12-31T23:59:59Z", 3),
            (-62_135_596_800, "0001-01-01T00:00:00Z", 0),
        ] {
            let utc = Utc::from_unix(secs);
            assert_eq!(utc.rfc3339(), text, "{secs}");
            assert_eq!(utc.weekday, weekday, "{secs}");
        }
    }

    /// Walks day by day from 1600 to 2500 and checks each date follows the
    /// previous one by the calendar's own rules (month lengths, leap years).
    #[test]
    fn every_day_follows_the_previous_one() {
        let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let length = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let first = -135_140; // 1600-01-01
        let mut prev = Utc::from_unix(first * SECS_PER_DAY);
        assert_eq!((prev.year, prev.month, prev.day), (1600, 1, 1));
        for days in first + 1..=194_000 {
            let next = Utc::from_unix(days * SECS_PER_DAY);
            let expected = if prev.day < length(prev.year, prev.month) {
                (prev.year, prev.month, prev.day + 1)
            } else if prev.month < 12 {
                (prev.year, prev.month + 1, 1)
            } else {
                (prev.year + 1, 1, 1)
            };
            assert_eq!((next.year, next.month, next.day), expected, "day {days}");
            assert_eq!(next.weekday, (prev.weekday + 1) % 7, "day {days}");
            assert_eq!((next.hour, next.minute, next.second), (0, 0, 0));
            prev = next;
        }
        assert!(prev.year >= 2500, "{prev:?}");
    }
}
