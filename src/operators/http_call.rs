//! `http_call>: URI`: the `http>` request, then the response body becomes the task's `^sub`
//! children: JSON or YAML by its content type (`content_type_override` replaces it), lowered
//! and validated exactly like the tasks of a `.dig` file.
//!
//! Errors point into the response as if it were a file named `TASK (http_call> response)`, so
//! they name the task that fetched it: `+wf+fetch (http_call> response):3:5: message`.

use super::http::{exchange, Spec, MAX_CONTENT_BYTES};
use super::subtasks::generated_body;
use super::{failed, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::diag::{Diagnostic, FileId, SourceMap, Span};
use crate::dig::{Key, Map, Value, ValueKind};
use crate::engine::Outcome;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::path::PathBuf;

pub struct HttpCall;

impl Operator for HttpCall {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move {
            let spec = match Spec::parse("http_call", &ctx.run) {
                Ok(spec) => spec,
                Err(message) => return Ok(failed(message, false)),
            };
            let reply = match exchange(&ctx, &spec, Some(MAX_CONTENT_BYTES)).await {
                Ok(reply) => reply,
                Err(failure) => return Ok(failure.into_outcome()),
            };
            let media_type = spec
                .content_type_override
                .as_deref()
                .or(reply.content_type.as_deref());
            let body = reply.body.unwrap_or_default();
            // The server may answer differently next time, so `_retry` applies.
            Ok(match workflow_of(&ctx.run.full_name, media_type, body) {
                Ok(sub) => generated_body(sub),
                Err(message) => failed(message, true),
            })
        })
    }
}

/// Nesting deeper than this is refused (serde_json's own limit), so lowering cannot overflow
/// the stack on a hostile response.
const MAX_DEPTH: usize = 128;
/// Source lines longer than this (minified JSON) are not echoed under the message.
const MAX_ECHOED_LINE: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Json,
    Yaml,
}

/// Digdag's two types, plus the registered YAML types (RFC 9512) that Digdag predates.
fn format_of(media_type: Option<&str>) -> Result<Format, String> {
    let Some(given) = media_type else {
        return Err("http_call> the response has no Content-Type: set \
                    `content_type_override: application/json` (or `application/x-yaml`)"
            .into());
    };
    let essence = given
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-yaml" | "application/yaml" | "text/yaml" | "text/x-yaml" => Ok(Format::Yaml),
        _ => Err(format!(
            "http_call> unsupported Content-Type `{given}` (expected application/json or \
             application/x-yaml): set `content_type_override` if the body is one of them"
        )),
    }
}

/// The `^sub` body a response describes, checked by the same lowering as a file's tasks.
/// `timezone`, `schedule` and `sla` are dropped, as for `call>`.
fn workflow_of(task: &str, media_type: Option<&str>, text: String) -> Result<Map, String> {
    let format = format_of(media_type)?;
    let mut sources = SourceMap::new();
    let path = PathBuf::from(format!("{task} (http_call> response)"));
    let parsed = match format {
        Format::Yaml => crate::dig::parse_document(&mut sources, path, text),
        Format::Json => {
            let file = sources.add(path, text);
            let text = sources.get(file).map_or("", |f| f.text.as_str());
            parse_json(file, text).map_err(|d| vec![d])
        }
    };
    let value = parsed.map_err(|diags| invalid(&diags, &sources))?;
    let ValueKind::Map(mut body) = value.kind else {
        let found = match value.kind {
            ValueKind::Seq(_) => "a list",
            ValueKind::Null => "nothing",
            _ => "a scalar",
        };
        let d = Diagnostic::error(
            value.span,
            format!("the response must be a workflow (a map of tasks), found {found}"),
        )
        .with_help("answer with tasks like `{\"+step\": {\"echo>\": \"hello\"}}`");
        return Err(invalid(&[d], &sources));
    };
    body.entries
        .retain(|(k, _)| !matches!(k.name.as_str(), "timezone" | "schedule" | "sla"));
    let sub = Value {
        kind: ValueKind::Map(body.clone()),
        span: value.span,
    };
    // The engine lowers the body again when it stores the children; lowering here first is
    // what lets the errors point into the response, which only this run still has.
    crate::dig::lower_task("^sub", &sub).map_err(|diags| invalid(&diags, &sources))?;
    Ok(body)
}

fn invalid(diags: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::from("http_call> the response is not a valid workflow:\n");
    for d in diags {
        out.push_str(&render(d, sources));
    }
    out.truncate(out.trim_end().len());
    out
}

/// `Diagnostic::render`, except that a very long source line (minified JSON) is not echoed.
fn render(d: &Diagnostic, sources: &SourceMap) -> String {
    let Some(file) = sources.get(d.span.file) else {
        return d.render(sources);
    };
    let (line, col) = file.line_col(d.span.start);
    if file.line_text(line).chars().count() <= MAX_ECHOED_LINE {
        return d.render(sources);
    }
    let mut out = format!("{}:{line}:{col}: {}\n", file.path.display(), d.message);
    if let Some(help) = &d.help {
        out.push_str(&format!("  = help: {help}\n"));
    }
    out
}

/// JSON text as the spanned tree the YAML parser builds, with JSON's types. Every node's span
/// is its text in the response: `serde_json` hands containers' members over as raw slices of
/// the input, so each one's offset is where its slice starts.
fn parse_json(file: FileId, text: &str) -> Result<Value, Diagnostic> {
    let root: &RawValue = serde_json::from_str(text).map_err(|e| syntax_error(file, text, &e))?;
    json_node(file, text, root, Span::new(file, 0, text.len()), 0)
}

fn json_node(
    file: FileId,
    text: &str,
    raw: &RawValue,
    parent: Span,
    depth: usize,
) -> Result<Value, Diagnostic> {
    let src = raw.get();
    let at = offset_in(text, src);
    let span = at.map_or(parent, |at| Span::new(file, at, at + src.len()));
    if depth > MAX_DEPTH {
        return Err(Diagnostic::error(
            span,
            format!("the response is nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    let node: Node<'_> = serde_json::from_str(src)
        .map_err(|e| Diagnostic::error(span, format!("invalid JSON: {}", message_of(&e))))?;
    let kind = match node {
        Node::Null => ValueKind::Null,
        Node::Bool(b) => ValueKind::Bool(b),
        Node::Int(i) => ValueKind::Int(i),
        Node::Float(f) => ValueKind::Float(f),
        Node::Str(s) => ValueKind::Str(match (&s, offset_in(text, &s)) {
            // Unescaped: `${...}` spans are exact.
            (Cow::Borrowed(b), Some(base)) => crate::dig::template::split_exact(b, file, base),
            _ => crate::dig::template::split(&s, span),
        }),
        Node::Array(items) => ValueKind::Seq(
            items
                .into_iter()
                .map(|item| json_node(file, text, item, span, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(members) => {
            let mut map = Map::default();
            for (name, raw) in members {
                let value = json_node(file, text, raw, span, depth + 1)?;
                let key_span = match &name {
                    // With the quotes around it.
                    Cow::Borrowed(k) => offset_in(text, k)
                        .map(|at| Span::new(file, at.saturating_sub(1), at + k.len() + 1)),
                    Cow::Owned(_) => None,
                }
                .unwrap_or(value.span);
                // The tree's maps have unique keys, as the YAML parser guarantees for files.
                if map.get(&name).is_some() {
                    return Err(
                        Diagnostic::error(key_span, format!("duplicate key `{name}`"))
                            .with_help("each key of a map may appear once"),
                    );
                }
                map.entries.push((
                    Key {
                        name: name.into_owned(),
                        span: key_span,
                    },
                    value,
                ));
            }
            ValueKind::Map(map)
        }
    };
    Ok(Value { kind, span })
}

/// Where `part`, a slice of `whole`, starts in it.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len()).then_some(start)
}

fn syntax_error(file: FileId, text: &str, e: &serde_json::Error) -> Diagnostic {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum();
    let mut at = (line_start + e.column().saturating_sub(1)).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    Diagnostic::error(
        Span::new(file, at, at),
        format!("invalid JSON: {}", message_of(e)),
    )
}

/// serde_json's message without its ` at line L column C` (the span says where).
fn message_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// One JSON node with its members still raw, so their positions can be found.
enum Node<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<&'a RawValue>),
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Node<'de>, E> {
        Ok(Node::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Node<'de>, E> {
        // Beyond i64 a number is a float, as JavaScript would hold it.
        Ok(i64::try_from(u).map_or(Node::Float(u as f64), Node::Int))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Node<'de>, E> {
        Ok(Node::Float(f))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(KeyText(name)) = map.next_key::<KeyText<'de>>()? {
            members.push((name, map.next_value::<&'de RawValue>()?));
        }
        Ok(Node::Object(members))
    }
}

/// A member name, borrowed from the input when it has no escapes.
struct KeyText<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for KeyText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<KeyText<'de>, E> {
                Ok(KeyText(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<KeyText<'de>, E> {
                Ok(KeyText(Cow::Owned(s.to_owned())))
            }

            fn visit_string<E>(self, s: String) -> Result<KeyText<'de>, E> {
                Ok(KeyText(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TASK: &str = "+wf+fetch";

    fn ok(media_type: &str, text: &str) -> serde_json::Value {
        let body = workflow_of(TASK, Some(media_type), text.to_owned())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        Value {
            kind: ValueKind::Map(body),
            span: Span::NONE,
        }
        .to_json_raw()
    }

    fn err(media_type: Option<&str>, text: &str) -> String {
        workflow_of(TASK, media_type, text.to_owned()).unwrap_err()
    }

    #[test]
    fn json_and_yaml_bodies_become_tasks_with_json_types() {
        let json = r#"{"timezone": "UTC", "+a": {"echo>": "hi ${session_time}", "n": 0.5, "big": 18446744073709551615},
                       "+b": {"sh>": "echo \"\u00e9\ud83d\ude00\""}, "_export": {"k": [1, true, null]}}"#;
        assert_eq!(
            ok("application/json; charset=utf-8", json),
            json!({"+a": {"echo>": "hi ${session_time}", "n": 0.5, "big": 18446744073709551615.0},
                   "+b": {"sh>": "echo \"é😀\""}, "_export": {"k": [1, true, null]}})
        );
        let yaml = "schedule:\n  daily>: 07:00:00\n+a:\n  echo>: ${x}\n";
        assert_eq!(
            ok("application/x-yaml", yaml),
            json!({"+a": {"echo>": "${x}"}})
        );
        assert_eq!(
            ok("TEXT/YAML", "+a:\n  echo>: 1\n"),
            json!({"+a": {"echo>": 1}})
        );
        assert_eq!(ok("application/json", "{}"), json!({}));
    }

    #[test]
    fn spans_point_into_the_response() {
        let text =
            "{\n  \"+a\": {\"echo>\": \"x\"},\n  \"+b\": {\"echo>\": \"y\", \"sh>\": \"z\"}\n}";
        let mut sources = SourceMap::new();
        let file = sources.add(PathBuf::from("r"), text.to_owned());
        let v = parse_json(file, text).unwrap();
        let ValueKind::Map(m) = &v.kind else {
            panic!("a map")
        };
        let (key, value) = &m.entries[1];
        assert_eq!(sources.snippet(key.span), "\"+b\"");
        assert_eq!(sources.snippet(value.span), r#"{"echo>": "y", "sh>": "z"}"#);
        let ValueKind::Map(inner) = &value.kind else {
            panic!("a map")
        };
        assert_eq!(sources.snippet(inner.entries[1].1.span), "\"z\"");
    }

    #[test]
    fn malformed_responses_name_the_task_and_the_place() {
        let cases: &[(Option<&str>, &str, &str)] = &[
            (
                Some("application/json"),
                "{\"+a\": {\"echo>\": \"x\",}}",
                "+wf+fetch (http_call> response):1:22: invalid JSON: key must be a string",
            ),
            (
                Some("application/json"),
                "{\n  \"+a\": {\"echo>\": \"x\", \"sh>\": \"y\"}\n}",
                "+wf+fetch (http_call> response):2:24: task `+a` has more than one operator: `echo>` and `sh>`",
            ),
            (
                Some("application/json"),
                "{\"+a\": {\"echo>\": 1}, \"+a\": {}}",
                "+wf+fetch (http_call> response):1:22: duplicate key `+a`",
            ),
            (
                Some("application/json"),
                "[1, 2]",
                "+wf+fetch (http_call> response):1:1: the response must be a workflow (a map of tasks), found a list",
            ),
            (
                Some("application/x-yaml"),
                "+a:\n  echo>: x\n  bogus_key: [\n",
                "+wf+fetch (http_call> response):3:14: unclosed flow sequence",
            ),
            (
                Some("application/x-yaml"),
                "+a:\n  echo>: x\n+b:\n  _retry: often\n  echo>: y\n",
                "+wf+fetch (http_call> response):4:",
            ),
            (Some("application/json"), "", "invalid JSON: EOF while parsing a value"),
            (Some("text/html"), "<html>", "unsupported Content-Type `text/html`"),
            (None, "{}", "the response has no Content-Type"),
        ];
        for (media_type, text, expect) in cases {
            let got = err(*media_type, text);
            assert!(got.contains(expect), "{text}:\n{got}");
            if media_type.is_some_and(|m| m.contains("json") || m.contains("yaml")) {
                assert!(
                    got.starts_with("http_call> the response is not a valid workflow:\n"),
                    "{got}"
                );
            }
        }
        // Lowering errors carry the line and a caret under the offending text.
        let got = err(
            Some("application/json"),
            "{\n  \"+a\": {\"echo>\": \"x\", \"sh>\": \"y\"}\n}",
        );
        assert!(
            got.contains("2 |   \"+a\": {\"echo>\": \"x\", \"sh>\": \"y\"}"),
            "{got}"
        );
        assert!(got.contains('^'), "{got}");
    }

    #[test]
    fn hostile_nesting_and_long_lines_stay_bounded() {
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        let got = err(Some("application/json"), &format!("{{\"+a\": {deep}}}"));
        assert!(
            got.contains("nested more than 128 levels"),
            "{}",
            &got[..200.min(got.len())]
        );
        assert!(
            got.len() < 1_000,
            "a long line is not echoed: {} bytes",
            got.len()
        );
        let long = format!(
            "{{\"+a\": {{\"echo>\": \"{}\", \"sh>\": 1}}}}",
            "x".repeat(5_000)
        );
        let got = err(Some("application/json"), &long);
        assert!(got.contains("+wf+fetch (http_call> response):1:"), "{got}");
        assert!(got.len() < 1_000, "{} bytes", got.len());
    }

    #[test]
    fn offsets_of_slices() {
        let whole = "abcdef";
        assert_eq!(offset_in(whole, &whole[2..4]), Some(2));
        assert_eq!(offset_in(whole, "other"), None);
    }
}
