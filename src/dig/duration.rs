//! Durations as `.dig` files write them: the one parser for `_timeout`, `_retry` and `wait>`.
//!
//! Digdag's `Durations`: `[Nd][Nh][Nm][Ns]`, each unit at most once and largest first,
//! case-insensitive, spaces allowed (`1h30m`, `1d 2h`, `30S`), or a plain number of seconds.

use std::time::Duration;

/// Parses a duration, `None` when the text is not one.
pub fn parse(text: &str) -> Option<Duration> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_rank = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (rank, unit) = match c.to_ascii_lowercase() {
            'd' => (1, 86_400),
            'h' => (2, 3_600),
            'm' => (3, 60),
            's' => (4, 1),
            _ => return None,
        };
        // Units come once each, largest first, each after a number.
        if number.is_empty() || rank <= last_rank {
            return None;
        }
        last_rank = rank;
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, secs: Option<u64>) {
        assert_eq!(parse(text), secs.map(Duration::from_secs), "{text}");
    }

    #[test]
    fn digdag_forms_parse() {
        check("30", Some(30));
        check("30s", Some(30));
        check("5m", Some(300));
        check("2h", Some(7200));
        check("1d", Some(86_400));
        check("1h30m", Some(5400));
        check("1m30s", Some(90));
        check("1M 30S", Some(90));
        check("1d 2h", Some(93_600));
        check("1d2h3m4s", Some(93_784));
    }

    #[test]
    fn anything_else_is_rejected() {
        for text in [
            "",
            "abc",
            "5x",
            "m",
            "-5",
            "1x",
            "30s1m",
            "1m2",
            "1h1h",
            "99999999999999999999d",
        ] {
            check(text, None);
        }
    }
}
