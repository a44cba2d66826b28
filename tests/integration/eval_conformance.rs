//! `../shared/conformance/cases.tsv`, `eval` rows: a Digdag eval test file is a params map
//! (its first key is `session_time` when it has one); every `${...}` is evaluated with the
//! row's timezone and the result must equal the expected file, compared as data.

use crate::util;
use spade::diag::SourceMap;
use spade::dig::{self, ValueKind};
use spade::expr::{self, EvalContext, JsonMap, Layer, SecretProvider, SessionInfo};
use std::path::Path;

struct NoSecrets;

impl SecretProvider for NoSecrets {
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

fn parse(shared: &Path, rel: &str, sources: &mut SourceMap) -> Result<dig::Value, String> {
    let path = shared.join(rel);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    dig::parse_document(sources, path.clone(), text).map_err(|diags| {
        diags
            .iter()
            .map(|d| d.render(sources))
            .collect::<Vec<_>>()
            .join("")
    })
}

/// Evaluates one row; `Err` describes the failure.
fn run_row(shared: &Path, workflow: &str, params: &str, expect: &str) -> Result<(), String> {
    let mut sources = SourceMap::new();
    let doc = parse(shared, workflow, &mut sources)?;
    let ValueKind::Map(map) = &doc.kind else {
        return Err(format!("{workflow} is not a map"));
    };
    let settings: Vec<(&str, &str)> = params
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let timezone = settings
        .iter()
        .find(|(k, _)| *k == "timezone")
        .map_or("UTC", |(_, v)| *v);
    let session_time = match map.get("session_time").map(dig::Value::to_json_raw) {
        Some(serde_json::Value::String(s)) => s
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("session_time `{s}`: {e}"))?,
        _ => "2016-01-30T08:00:00Z".parse().map_err(|e| format!("{e}"))?,
    };
    let info = SessionInfo {
        timezone: timezone.to_string(),
        session_time,
        session_uuid: "00000000-0000-0000-0000-000000000000".into(),
        session_id: 1,
        attempt_id: 1,
        project_id: 1,
        task_name: "+eval".into(),
        retry_attempt_name: None,
        last_session_time: None,
        next_session_time: None,
        last_executed_session_time: None,
    };
    let builtins = expr::builtins(&info);
    let ctx = EvalContext {
        timezone: jiff::tz::TimeZone::get(timezone).map_err(|e| format!("{e}"))?,
        now: session_time,
        secrets: &NoSecrets,
    };
    let evaluated = expr::eval_params(&[Layer::Plain(&builtins), Layer::Raw(map)], &ctx)
        .map_err(|e| format!("evaluation failed: {e}"))?;
    // Only the file's own keys are compared: the built-ins are not in the expected file.
    let got: JsonMap = map
        .entries
        .iter()
        .map(|(k, _)| {
            let v = evaluated.params.get(&k.name).cloned();
            (k.name.clone(), v.unwrap_or(serde_json::Value::Null))
        })
        .collect();
    let expected = parse(shared, expect, &mut sources)?.to_json_raw();
    let got = serde_json::Value::Object(got);
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "expected {}\n  got      {}",
            serde_json::to_string(&expected).unwrap_or_default(),
            serde_json::to_string(&got).unwrap_or_default()
        ))
    }
}

#[test]
fn eval_rows_of_cases_table_match_digdag() {
    let Some(shared) = util::shared() else { return };
    let table = std::fs::read_to_string(shared.join("conformance/cases.tsv")).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (kind_c, name_c, wf_c, params_c, expect_c) = (
        col("kind"),
        col("name"),
        col("workflow"),
        col("params"),
        col("expect"),
    );
    let mut failures = Vec::new();
    let mut rows = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split('\t').collect();
        let cell = |c: usize| cells.get(c).copied().unwrap_or("");
        if cell(kind_c) != "eval" {
            continue;
        }
        rows += 1;
        let name = cell(name_c);
        match run_row(&shared, cell(wf_c), cell(params_c), cell(expect_c)) {
            Ok(()) => eprintln!("pass {name}"),
            Err(e) => {
                eprintln!("FAIL {name}");
                failures.push(format!("{name}:\n  {e}"));
            }
        }
    }
    assert!(rows > 0, "no eval rows in cases.tsv");
    assert!(
        failures.is_empty(),
        "{} of {rows} eval rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
