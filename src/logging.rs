//! Structured logs through `tracing`: human lines (RFC 3339 UTC timestamps, colour only on a
//! terminal) or JSON objects, filtered by `SPADE_LOG` or `RUST_LOG`. Under systemd, when
//! stderr is the journal (`JOURNAL_STREAM`), human lines carry no timestamp: the journal adds
//! its own, and two would only disagree.

use crate::config::LogFormat;
use std::io::IsTerminal as _;
use tracing_subscriber::fmt::time::UtcTime;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once (later calls keep the first, as tests that call
/// `run` twice need). `default` is the filter without `SPADE_LOG`/`RUST_LOG`.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_env("SPADE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(UtcTime::rfc_3339());
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human if stderr_is_journal() => {
            builder.without_time().with_ansi(false).try_init()
        }
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// Whether stderr is the stream systemd named in `JOURNAL_STREAM` (`<device>:<inode>`).
pub fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    journal_stream_matches(&value, stat.st_dev, stat.st_ino)
}

fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_device_and_inode() {
        assert!(journal_stream_matches("8:1234", 8, 1234));
        assert!(!journal_stream_matches("8:1234", 8, 1235));
        assert!(!journal_stream_matches("garbage", 8, 1234));
    }
}
