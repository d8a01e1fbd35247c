//! The `Date` header. RFC 9110 §6.6.1: an origin server with a clock sends
//! one in every `2xx`, `3xx` and `4xx` response. Its value changes once a
//! second, so the loop formats it once a second and every response in that
//! second copies the same 29 bytes. Pure: the loop passes the time in.

use std::time::{SystemTime, UNIX_EPOCH};

/// The length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const DATE_LEN: usize = 29;

/// The `Date` value for the current second.
pub(crate) struct HttpDate {
    text: [u8; DATE_LEN],
    /// The Unix second `text` shows.
    second: u64,
    /// The loop time (ms since it started) at which that second ends.
    valid_until_ms: u64,
}

impl HttpDate {
    /// The epoch, until the loop sets the time on its first pass.
    pub(crate) fn new() -> Self {
        HttpDate {
            text: imf_fixdate(0),
            second: 0,
            valid_until_ms: 0,
        }
    }

    /// Whether the second shown has ended by loop time `now_ms`, so the
    /// loop should read the wall clock and [`set`](HttpDate::set) it.
    pub(crate) fn is_stale(&self, now_ms: u64) -> bool {
        now_ms >= self.valid_until_ms
    }

    /// Shows the second of `wall`, read at loop time `now_ms`, until the
    /// loop time at which that second ends.
    pub(crate) fn set(&mut self, now_ms: u64, wall: SystemTime) {
        // A clock before 1970 is not one to report: show the epoch.
        let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.second = since_epoch.as_secs();
        self.text = imf_fixdate(self.second);
        self.valid_until_ms = now_ms + 1000 - u64::from(since_epoch.subsec_millis());
    }

    /// The header value: `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub(crate) fn value(&self) -> &[u8] {
        &self.text
    }

    /// The Unix second shown, for caches of whole heads that carry it.
    pub(crate) fn second(&self) -> u64 {
        self.second
    }
}

/// Formats a Unix time as an IMF-fixdate (RFC 9110 §5.6.7), the only form
/// a sender may generate.
fn imf_fixdate(unix_secs: u64) -> [u8; DATE_LEN] {
    // 1970-01-01 was a Thursday.
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_secs / 86_400;
    let in_day = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    let two = |out: &mut [u8; DATE_LEN], at: usize, n: u64| {
        out[at] = b'0' + (n / 10 % 10) as u8;
        out[at + 1] = b'0' + (n % 10) as u8;
    };
    out[..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
    two(&mut out, 5, day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out, 12, year / 100);
    two(&mut out, 14, year % 100);
    two(&mut out, 17, in_day / 3600);
    two(&mut out, 20, in_day / 60 % 60);
    two(&mut out, 23, in_day % 60);
    out
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31) in the proleptic
/// Gregorian calendar. Howard Hinnant's `civil_from_days`, for days ≥ 0:
/// count in 400-year eras of 146 097 days, with years starting in March so
/// that the leap day falls last.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
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

    #[test]
    fn imf_fixdate_table() {
        // Values from Python's email.utils.formatdate(t, usegmt=True).
        let table: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"), // RFC 9110's example
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_795_567_051, "Wed, 25 Nov 2026 00:37:31 GMT"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for &(secs, want) in table {
            assert_eq!(std::str::from_utf8(&imf_fixdate(secs)).unwrap(), want);
        }
    }

    #[test]
    fn stale_when_the_wall_clock_second_ends() {
        let mut date = HttpDate::new();
        assert!(date.is_stale(0), "set on the loop's first pass");
        // At loop time 5 000 ms the wall clock reads x.250 s: the second
        // shown ends 750 ms later.
        date.set(5_000, UNIX_EPOCH + Duration::from_millis(784_111_777_250));
        assert_eq!(date.value(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(date.second(), 784_111_777);
        assert!(!date.is_stale(5_749));
        assert!(date.is_stale(5_750));
    }
}
