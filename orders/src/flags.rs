//! How the commands read flag values (durations, order ids, times) and show times back: shared
//! by every command, so each flag reads alike everywhere.

use chrono::{DateTime, SecondsFormat, Utc};
use events_schema::OrderId;

use crate::CliError;

/// Parses `300`, `300s`, `5m`, `1h`, `500ms`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 5m or 1h"))?;
    let secs = |k: u64| std::time::Duration::from_secs(n.saturating_mul(k));
    match unit {
        "" | "s" => Ok(secs(1)),
        "m" => Ok(secs(60)),
        "h" => Ok(secs(3600)),
        "d" => Ok(secs(86_400)),
        "ms" => Ok(std::time::Duration::from_millis(n)),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h or d)")),
    }
}

pub fn parse_order_id(s: &str) -> Result<OrderId, String> {
    OrderId::parse(s).map_err(|e| format!("not an order id: {e}"))
}

/// Parses an RFC 3339 time given to `flag`; one clear line otherwise.
pub fn parse_time(flag: &str, s: &str) -> Result<DateTime<Utc>, CliError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            CliError::Config(format!(
                "{flag}: {s:?} is not an RFC 3339 time such as 2025-03-01T12:00:00Z ({e})"
            ))
        })
}

/// A time as shown to the user: UTC, with as many fractional digits as it has.
pub fn show_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_that_is_not_rfc_3339_is_one_clear_error() {
        let e = parse_time("--as-of", "yesterday").expect_err("not a time");
        let msg = e.to_string();
        assert!(
            msg.starts_with("--as-of: \"yesterday\" is not an RFC 3339 time"),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1);
    }
}
