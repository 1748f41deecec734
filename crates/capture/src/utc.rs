//! Calendar dates and times in UTC from Unix nanoseconds, for display,
//! file names and partition keys (no time-zone database involved).

/// The UTC calendar fields of a Unix time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–59.
    pub second: u32,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl UtcTime {
    /// Splits `unix_nanos` into calendar fields.
    pub fn from_unix_nanos(unix_nanos: u64) -> Self {
        let secs = unix_nanos / 1_000_000_000;
        let days = (secs / 86_400) as i64;
        let rem = (secs % 86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            nanos: (unix_nanos % 1_000_000_000) as u32,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// RFC 3339 with nanoseconds: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{}T{:02}:{:02}:{:02}.{:09}Z",
            self.date(),
            self.hour,
            self.minute,
            self.second,
            self.nanos
        )
    }

    /// A compact form that sorts as text in time order and is safe in file
    /// names: `YYYYMMDDTHHMMSS.nnnnnnnnnZ`.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.nanos
        )
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_times_in_utc() {
        let t = UtcTime::from_unix_nanos(1_764_021_622_582_793_154);
        assert_eq!(t.rfc3339(), "2025-11-24T22:00:22.582793154Z");
        assert_eq!(t.date(), "2025-11-24");
        assert_eq!(t.compact(), "20251124T220022.582793154Z");
        assert_eq!(
            UtcTime::from_unix_nanos(0).rfc3339(),
            "1970-01-01T00:00:00.000000000Z"
        );
        // A leap day.
        assert_eq!(
            UtcTime::from_unix_nanos(951_782_400_000_000_000).date(),
            "2000-02-29"
        );
    }
}
