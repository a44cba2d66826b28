//! Digdag's template rules: splitting a string into literal text and `${...}` placeholders,
//! and rendering each placeholder's value as text.

use super::eval::{Interp, JsError};
use super::stdlib::json_stringify;
use super::value::{number_to_string, Value};

/// One piece of a split template string.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Piece {
    Literal(String),
    /// The source between `${` and its matching `}`, and its byte offset in the string.
    Expr(String, usize),
}

/// Splits a string the way Digdag's `template()` does: `$$` is `$`; `${` opens a placeholder
/// closed by the matching `}` (braces counted, also inside string literals, as Digdag's
/// extended syntax does); `${` followed by lowercase letters and `:` (`${secret:x}`) and an
/// unclosed `${` stay literal.
///
/// This is the splitter for strings that arrive as JSON (generated bodies); `.dig` strings
/// come split by the parser, under the same rules.
pub(crate) fn split(s: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            lit.push('$');
            offset += i + 2;
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            lit.push('$');
            offset += i + 1;
            rest = after;
            continue;
        };
        if is_command_reference(body) {
            lit.push_str("${");
            offset += i + 2;
            rest = body;
            continue;
        }
        let Some(end) = matching_brace(body) else {
            // An unclosed `${` is kept literally, with everything after it.
            lit.push_str(&rest[i..]);
            rest = "";
            break;
        };
        if !lit.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Expr(body[..end].to_string(), offset + i + 2));
        offset += i + 2 + end + 1;
        rest = &body[end + 1..];
    }
    lit.push_str(rest);
    if !lit.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Literal(lit));
    }
    pieces
}

/// `secret:`-style references (`[a-z]+:`) are left for operators.
fn is_command_reference(body: &str) -> bool {
    let letters = body.bytes().take_while(u8::is_ascii_lowercase).count();
    letters > 0 && body.as_bytes().get(letters) == Some(&b':')
}

/// The index of the `}` that closes a placeholder whose body starts at `body`.
fn matching_brace(body: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, b) in body.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// True when `s` holds a `${secret:...}` reference an operator must resolve.
pub(crate) fn has_secret_reference(s: &str) -> bool {
    s.contains("${secret:")
}

/// The text of one placeholder's value: null and undefined give `""`, strings stay as they
/// are, moment objects give their `toJSON()` (ISO UTC with milliseconds), everything else
/// `JSON.stringify`.
pub(crate) fn render(interp: &mut Interp<'_>, v: &Value) -> Result<String, JsError> {
    Ok(match v {
        Value::Undefined | Value::Null => String::new(),
        Value::Str(s) => s.to_string(),
        Value::Num(n) if n.is_finite() => number_to_string(*n),
        Value::Moment(m) => m.borrow().to_json().unwrap_or_default(),
        Value::Date(ms) => super::moment::iso_utc(*ms).unwrap_or_default(),
        other => json_stringify(interp, other, "", "")?.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Piece {
        Piece::Literal(s.into())
    }

    #[test]
    fn splits_like_digdag() {
        assert_eq!(split("$"), vec![lit("$")]);
        assert_eq!(split("p$$s"), vec![lit("p$s")]);
        assert_eq!(split("${"), vec![lit("${")]);
        assert_eq!(split("p${v"), vec![lit("p${v")]);
        assert_eq!(
            split("p${1}m$$m${2}s"),
            vec![
                lit("p"),
                Piece::Expr("1".into(), 3),
                lit("m$m"),
                Piece::Expr("2".into(), 11),
                lit("s")
            ]
        );
        assert_eq!(split("${secret:a.b}"), vec![lit("${secret:a.b}")]);
        assert_eq!(
            split("${ v.map(function(x){return x*5}) }"),
            vec![Piece::Expr(" v.map(function(x){return x*5}) ".into(), 2)]
        );
        assert_eq!(split(""), vec![lit("")]);
    }
}
