//! Splits a string into literal text and `${...}` expressions by Digdag's template rules.
//!
//! Nothing is evaluated here. The rules follow `digdag.js` (spec 2.2), scanning left to right:
//! - `$$` is a literal `$`;
//! - `${` followed by lowercase letters and `:` (`${secret:x}`) stays literal, for operators;
//! - `${` opens an expression whose closing `}` is found by counting braces (Graal's extended
//!   syntax counts every brace, including those inside JavaScript string literals);
//! - an unclosed `${` stays literal text, and `${}` produces nothing;
//! - any other `$` is literal.

use crate::diag::{FileId, Span};
use crate::dig::value::{Template, TemplatePart};

/// Splits `raw`; every expression gets `span` (use this for strings whose text is not verbatim
/// in a file: escaped or folded scalars, or values built at run time with [`Span::NONE`]).
pub fn split(raw: &str, span: Span) -> Template {
    split_with(raw, |_, _| span)
}

/// Splits `raw`, which appears verbatim in file `file` at byte `base`, so every expression gets
/// the exact span of its source text (between `${` and `}`).
pub(crate) fn split_exact(raw: &str, file: FileId, base: usize) -> Template {
    split_with(raw, |start, end| Span::new(file, base + start, base + end))
}

fn split_with(raw: &str, span_of: impl Fn(usize, usize) -> Span) -> Template {
    let mut parts: Vec<TemplatePart> = Vec::new();
    let mut literal = String::new();
    let bytes = raw.as_bytes();
    let mut pos = 0;
    // `lit_from` marks the start of literal text not yet copied, so plain runs are copied whole.
    let mut lit_from = 0;
    while let Some(found) = raw.get(pos..).and_then(|rest| rest.find('$')) {
        let at = pos + found;
        match bytes.get(at + 1) {
            Some(b'$') => {
                literal.push_str(&raw[lit_from..=at]);
                pos = at + 2;
                lit_from = pos;
            }
            Some(b'{') if !is_prefixed_reference(&raw[at + 2..]) => {
                match matching_brace(&raw[at + 2..]) {
                    Some(len) => {
                        literal.push_str(&raw[lit_from..at]);
                        let (start, end) = (at + 2, at + 2 + len);
                        if start < end {
                            if !literal.is_empty() {
                                parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                            }
                            parts.push(TemplatePart::Expr {
                                source: raw[start..end].to_string(),
                                span: span_of(start, end),
                            });
                        }
                        pos = end + 1;
                        lit_from = pos;
                    }
                    // Unclosed: the rest of the string is literal text.
                    None => break,
                }
            }
            _ => pos = at + 1,
        }
    }
    literal.push_str(&raw[lit_from..]);
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Template {
        raw: raw.to_string(),
        parts,
    }
}

/// `${` + `[a-z]+:` is left for operators (`${secret:db.password}`).
fn is_prefixed_reference(after_open: &str) -> bool {
    let letters = after_open
        .bytes()
        .take_while(u8::is_ascii_lowercase)
        .count();
    letters > 0 && after_open.as_bytes().get(letters) == Some(&b':')
}

/// Byte length of the expression before the `}` that closes the `${`, counting nested braces.
fn matching_brace(after_open: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in after_open.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders parts as `text` and `{expr}` so one string states the whole split.
    fn check(input: &str, expect: &str) {
        let t = split(input, Span::NONE);
        assert_eq!(t.raw, input);
        let shown: String = t
            .parts
            .iter()
            .map(|p| match p {
                TemplatePart::Literal(s) => format!("<{s}>"),
                TemplatePart::Expr { source, .. } => format!("{{{source}}}"),
            })
            .collect();
        assert_eq!(shown, expect, "input {input:?}");
    }

    #[test]
    fn digdag_template_table() {
        // Rows of Digdag's `eval/template.dig` and `literal.dig`.
        check("$", "<$>");
        check("$$", "<$>");
        check("p$$s", "<p$s>");
        check("${", "<${>");
        check("${v", "<${v>");
        check("p${v", "<p${v>");
        check("}", "<}>");
        check("p${1}s", "<p>{1}<s>");
        check("p${1}m$$m${2}s", "<p>{1}<m$m>{2}<s>");
        check("${}", "");
        check("a${}b", "<ab>");
        check("", "");
        check("plain text", "<plain text>");
    }

    #[test]
    fn secret_references_and_braces() {
        check("${secret:db.password}", "<${secret:db.password}>");
        check("x ${foo:bar} ${y}", "<x ${foo:bar} >{y}");
        check("${Foo:bar}", "{Foo:bar}");
        check(
            "${ v.map(function(x){return x*5}) }",
            "{ v.map(function(x){return x*5}) }",
        );
        check("${'{'}}", "{'{'}}"); // Graal counts the brace inside the string literal too
        check("${a}${b}", "{a}{b}");
        check("$${x}", "<${x}>");
        check("é${x}ü", "<é>{x}<ü>");
    }

    #[test]
    fn exact_spans_point_at_the_expression_source() {
        let src = "echo>: hi ${name} and ${ 1 + 2 }";
        let base = src.find("hi").unwrap();
        let t = split_exact(&src[base..], FileId(0), base);
        let spans: Vec<&str> = t
            .parts
            .iter()
            .filter_map(|p| match p {
                TemplatePart::Expr { span, .. } => Some(&src[span.range()]),
                TemplatePart::Literal(_) => None,
            })
            .collect();
        assert_eq!(spans, ["name", " 1 + 2 "]);
    }
}
