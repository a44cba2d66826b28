//! The spade side of the `${...}` differential test (`tests/differential/run.js`): reads cases
//! as JSON lines on stdin and prints one result line per case, so the driver can compare them
//! with node and moment 2.21. Not part of `cargo test`; run it with
//! `cargo run --release --example expr-eval < cases.jsonl`.
//!
//! A case is `{"id", "tz", "session_time", "template", "params"}`; `params` (optional) go over
//! the built-in variables of a session at `session_time` in `tz`, and `now` is the session time.
//! A result is `{"id", "ok": true, "value"}` or `{"id", "ok": false, "error"}`, plus the
//! `params` the template saw (the built-ins included), which the node side evaluates with.

use spade::expr::{self, EvalContext, JsonMap, Layer, SecretProvider, SessionInfo};
use std::io::{BufRead, Write};

struct NoSecrets;

impl SecretProvider for NoSecrets {
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

/// The key the template is evaluated under; the cases never use it as a name.
const KEY: &str = "__differential_case";

fn session(tz: &str, session_time: jiff::Timestamp) -> SessionInfo {
    SessionInfo {
        timezone: tz.to_string(),
        session_time,
        session_uuid: "414a8b9e-b365-4394-916a-f0ed9987bd2b".into(),
        session_id: 7,
        attempt_id: 9,
        project_id: 3,
        task_name: "+differential+case".into(),
        retry_attempt_name: None,
        last_session_time: Some(session_time - jiff::SignedDuration::from_hours(24)),
        next_session_time: Some(session_time + jiff::SignedDuration::from_hours(24)),
        last_executed_session_time: None,
    }
}

fn evaluate(case: &serde_json::Value) -> Result<serde_json::Value, String> {
    let field = |name: &str| {
        case.get(name)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("case without a `{name}` string"))
    };
    let tz = field("tz")?;
    let template = field("template")?;
    let session_time: jiff::Timestamp = field("session_time")?
        .parse()
        .map_err(|e| format!("session_time: {e}"))?;
    let mut params = expr::builtins(&session(tz, session_time));
    if let Some(extra) = case.get("params").and_then(serde_json::Value::as_object) {
        for (k, v) in extra {
            params.insert(k.clone(), v.clone());
        }
    }
    let mut raw = JsonMap::new();
    raw.insert(KEY.into(), serde_json::Value::String(template.to_string()));
    let ctx = EvalContext {
        timezone: jiff::tz::TimeZone::get(tz).map_err(|e| format!("zone `{tz}`: {e}"))?,
        now: session_time,
        secrets: &NoSecrets,
    };
    let result = expr::eval_params(&[Layer::Plain(&params), Layer::RawJson(&raw)], &ctx);
    let mut out = serde_json::json!({ "id": case.get("id").cloned().unwrap_or_default() });
    match result {
        Ok(evaluated) => {
            out["ok"] = true.into();
            out["value"] = evaluated.params.get(KEY).cloned().unwrap_or_default();
        }
        Err(e) => {
            out["ok"] = false.into();
            out["error"] = e.to_string().into();
        }
    }
    out["params"] = serde_json::Value::Object(params);
    Ok(out)
}

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let out = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| e.to_string())
            .and_then(|case| evaluate(&case))
            .unwrap_or_else(
                |e| serde_json::json!({ "ok": false, "error": format!("bad case: {e}") }),
            );
        writeln!(stdout, "{out}")?;
    }
    stdout.flush()
}
