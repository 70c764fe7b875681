//! How values travel on B2's wire, for every layer to use: file names percent-encoded,
//! times in ms since the epoch, HTTP dates read. A leaf: it imports nothing of the crate.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// B2 file names travel percent-encoded, `/` kept as it is.
const NAME_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// A file name (or file info value) as B2 takes it in a header or a URL.
pub fn encode_name(name: &str) -> String {
    utf8_percent_encode(name, NAME_ENCODE).to_string()
}

/// This machine's time in ms since the epoch (0 before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An HTTP `Date` (`Wed, 02 Dec 2026 07:17:00 GMT`, the only form servers send now) in
/// ms since the epoch.
pub fn http_date_ms(date: &str) -> Option<u64> {
    let mut parts = date.split_whitespace().skip(1);
    let day: i64 = parts.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next() != Some("GMT") || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_read_as_epoch_ms() {
        assert_eq!(
            super::http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            super::http_date_ms("Tue, 29 Feb 2000 01:01:00 GMT"),
            Some(951_782_400_000 + 3_660_000)
        );
        assert_eq!(
            super::http_date_ms("Fri, 01 Jan 2027 00:00:00 GMT"),
            Some(1_798_761_600_000)
        );
        assert_eq!(super::http_date_ms("yesterday"), None);
    }
}
