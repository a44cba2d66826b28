//! The built-in variables (`session_time`, `session_date`, ...) in Digdag's exact formats.

use super::{JsonMap, SessionInfo};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::Value as J;

/// Every name [`builtins`] can define, for the static checker.
pub(crate) const NAMES: &[&str] = &[
    "timezone",
    "session_uuid",
    "session_id",
    "attempt_id",
    "project_id",
    "task_name",
    "retry_attempt_name",
    "session_time",
    "session_date",
    "session_date_compact",
    "session_local_time",
    "session_tz_offset",
    "session_unixtime",
    "last_session_time",
    "last_session_date",
    "last_session_date_compact",
    "last_session_local_time",
    "last_session_tz_offset",
    "last_session_unixtime",
    "next_session_time",
    "next_session_date",
    "next_session_date_compact",
    "next_session_local_time",
    "next_session_tz_offset",
    "next_session_unixtime",
    "last_executed_session_time",
    "last_executed_session_date",
    "last_executed_session_date_compact",
    "last_executed_session_local_time",
    "last_executed_session_tz_offset",
    "last_executed_session_unixtime",
];

/// Adds `<prefix>_time`, `_date`, `_date_compact`, `_local_time`, `_tz_offset`, `_unixtime`.
fn add_times(out: &mut JsonMap, prefix: &str, ts: Timestamp, tz: &TimeZone) {
    let z = ts.to_zoned(tz.clone());
    let fmt = |f: &str| J::String(z.strftime(f).to_string());
    // `yyyy-MM-dd'T'HH:mm:ssxxx`: UTC prints `+00:00`, never `Z`.
    out.insert(format!("{prefix}_time"), fmt("%Y-%m-%dT%H:%M:%S%:z"));
    out.insert(format!("{prefix}_date"), fmt("%Y-%m-%d"));
    out.insert(format!("{prefix}_date_compact"), fmt("%Y%m%d"));
    out.insert(format!("{prefix}_local_time"), fmt("%Y-%m-%d %H:%M:%S"));
    out.insert(format!("{prefix}_tz_offset"), fmt("%z"));
    out.insert(format!("{prefix}_unixtime"), J::from(ts.as_second()));
}

/// The built-in variables for one task run. An unknown zone name falls back to UTC (the
/// workflow loader has already rejected it).
pub(crate) fn builtins(info: &SessionInfo) -> JsonMap {
    let tz = TimeZone::get(&info.timezone).unwrap_or(TimeZone::UTC);
    let mut out = JsonMap::new();
    out.insert("timezone".into(), J::String(info.timezone.clone()));
    out.insert("session_uuid".into(), J::String(info.session_uuid.clone()));
    out.insert("session_id".into(), J::from(info.session_id));
    out.insert("attempt_id".into(), J::from(info.attempt_id));
    out.insert("project_id".into(), J::from(info.project_id));
    out.insert("task_name".into(), J::String(info.task_name.clone()));
    if let Some(name) = &info.retry_attempt_name {
        out.insert("retry_attempt_name".into(), J::String(name.clone()));
    }
    add_times(&mut out, "session", info.session_time, &tz);
    if let Some(ts) = info.last_session_time {
        add_times(&mut out, "last_session", ts, &tz);
    }
    if let Some(ts) = info.next_session_time {
        add_times(&mut out, "next_session", ts, &tz);
    }
    let scheduled = info.last_session_time.is_some() || info.next_session_time.is_some();
    match info.last_executed_session_time {
        Some(ts) => add_times(&mut out, "last_executed_session", ts, &tz),
        None if scheduled => {
            for suffix in ["time", "date", "date_compact", "local_time", "unixtime"] {
                out.insert(
                    format!("last_executed_session_{suffix}"),
                    J::String(String::new()),
                );
            }
            // Digdag formats the offset of an unknown time at epoch 0.
            let epoch = Timestamp::UNIX_EPOCH.to_zoned(tz.clone());
            out.insert(
                "last_executed_session_tz_offset".into(),
                J::String(epoch.strftime("%z").to_string()),
            );
        }
        None => {}
    }
    out
}
