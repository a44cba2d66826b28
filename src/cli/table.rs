//! Output of the client commands: aligned tables for people (local times with offsets,
//! durations, colour only on a terminal) and JSON for scripts.

use serde_json::Value;
use std::io::{IsTerminal as _, Write as _};

/// Prints `rows` under `headers`, each column as wide as its widest cell.
pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(visible_len(cell));
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<String>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let last = i + 1 == cells.len();
            text.push_str(cell);
            if !last {
                let pad = widths.get(i).copied().unwrap_or(0)
                    - visible_len(cell).min(widths.get(i).copied().unwrap_or(0));
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text
    };
    let _ = writeln!(
        out,
        "{}",
        line(headers.iter().map(|h| (*h).to_owned()).collect())
    );
    for row in rows {
        let _ = writeln!(out, "{}", line(row.clone()));
    }
}

/// The length without ANSI colour codes.
fn visible_len(text: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Prints a value as pretty JSON.
pub fn json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A status or state, coloured when stdout is a terminal.
pub fn status(text: &str) -> String {
    if !std::io::stdout().is_terminal() || std::env::var_os("NO_COLOR").is_some() {
        return text.to_owned();
    }
    let code = match text {
        "success" => "32",
        "error" | "group_error" | "killed" => "31",
        "running" | "retry_waiting" | "group_retry_waiting" => "33",
        _ => return text.to_owned(),
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A string field, `""` when absent.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An instant in the local zone, with its offset (`2026-01-30 09:00:00 +09:00`).
pub fn local_time(v: &Value, key: &str) -> String {
    let text = s(v, key);
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        Err(_) => text.to_owned(),
    }
}

/// A size for people: `812 B`, `4.0 KiB`, `1.2 MiB`, `3.4 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The time from `from` to `to` (or "" when either is absent), like `1m 05s`.
pub fn duration(v: &Value, from: &str, to: &str) -> String {
    let (Ok(a), Ok(b)) = (
        s(v, from).parse::<jiff::Timestamp>(),
        s(v, to).parse::<jiff::Timestamp>(),
    ) else {
        return String::new();
    };
    let secs = b.duration_since(a).as_secs_f64().max(0.0);
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m {:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!(
            "{}h {:02}m",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64
        )
    }
}
