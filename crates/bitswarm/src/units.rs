//! Human-readable sizes and rates, and parsing of sizes given on the command line.

/// Formats a byte count with binary units: `1.5 GiB`, `256 KiB`, `12 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)] // display only
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parses a size such as `262144`, `256K`, `256KiB`, `4M`, `4 MiB` (binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size (try 256K, 1M or a number of bytes)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}' (use K, M or G)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size '{text}' is too large"))
}

/// Parses a rate in bytes per second such as `500K`, `2M`, `2MiB/s` (binary units, as
/// [`parse_size`]; a trailing `/s` is allowed).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    match parse_size(t) {
        Ok(0) => Err(format!(
            "rate '{text}' is zero; leave the option out for no limit"
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "'{text}' is not a rate (bytes per second: try 500K, 2M or a number)"
        )),
    }
}

/// Parses a duration such as `30m`, `3s`, `1h30m`, `2d`, `90` (seconds when no unit).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{text}' is not a duration (try 90s, 30m, 1h30m or 2d)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, tail) = rest.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit.trim() {
            "" | "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        rest = next;
    }
    Ok(std::time::Duration::from_secs(total))
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian).
pub fn utc_date(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(256 * 1024), "256 KiB");
        assert_eq!(bytes(1536 * 1024 * 1024), "1.5 GiB");
    }

    #[test]
    fn formats_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_795_698_139), "2026-11-26 13:02:19 UTC");
        assert_eq!(utc_date(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn parses_rates_and_durations() {
        assert_eq!(parse_rate("500K"), Ok(512_000));
        assert_eq!(parse_rate("2M/s"), Ok(2 << 20));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_duration("3s"), Ok(std::time::Duration::from_secs(3)));
        assert_eq!(
            parse_duration("30m"),
            Ok(std::time::Duration::from_secs(1800))
        );
        assert_eq!(
            parse_duration("1h30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert_eq!(parse_duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("256K"), Ok(262_144));
        assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
