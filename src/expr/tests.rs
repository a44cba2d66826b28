//! Unit tests of evaluation through the public API: JavaScript, moment, built-ins, scoping.

use super::*;

fn ctx_in(tz: &str) -> EvalContext<'static> {
    EvalContext {
        timezone: jiff::tz::TimeZone::get(tz).unwrap(),
        now: "2016-03-13T10:00:00Z".parse().unwrap(),
        secrets: &NoSecrets,
    }
}

struct NoSecrets;
impl SecretProvider for NoSecrets {
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

/// Evaluates `${expr}` in UTC with a few params and compares the rendered text.
fn check(expr: &str, expected: &str) {
    check_in("UTC", expr, expected);
}

fn check_in(tz: &str, expr: &str, expected: &str) {
    let params: JsonMap = serde_json::from_str(
        r#"{"a": 1, "s": "str", "arr": [1, 2, 3], "obj": {"k": "v", "n": {"x": 5}},
            "session_time": "2016-03-13T10:00:00+00:00", "t": true}"#,
    )
    .unwrap();
    let mut raw = JsonMap::new();
    raw.insert(
        "out".into(),
        serde_json::Value::String(format!("${{{expr}}}")),
    );
    let layers = [Layer::Plain(&params), Layer::RawJson(&raw)];
    let got = eval_params(&layers, &ctx_in(tz));
    let got = match got {
        Ok(e) => e.params["out"].as_str().unwrap().to_string(),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(got, expected, "`${{{expr}}}`");
}

#[test]
fn literals() {
    check("1", "1");
    check("0.2", "0.2");
    check("'a\\tb'", "a\tb");
    check("[1, 'x', null]", "[1,\"x\",null]");
    check("{a: 1, 'b': [true]}", "{\"a\":1,\"b\":[true]}");
    check("null", "");
    check("undefined", "");
    check("true", "true");
    check("1e21", "1e+21");
}
