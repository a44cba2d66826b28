//! Splits a string into literal text and `${...}` expressions by Digdag's template rules.
//!
//! Nothing is evaluated here. The rules follow `digdag.js` (spec 2.2): the text is scanned for
//! the next `${` that opens a placeholder, and
//! - in the literal text before it, every `$$` is a `$`; so `$${x}` is `$` followed by the
//!   value of `x` (the `${` that follows the first `$` opens the placeholder);
//! - `${` followed by lowercase letters and `:` (`${secret:x}`) does not open one: it stays
//!   literal, for operators; neither does a `${` that ends the string;
//! - the closing `}` is found by counting braces (Graal's extended syntax counts every brace,
//!   including those inside JavaScript string literals);
//! - an unclosed `${` and the rest of the string are literal text (with `$$` as `$` there too),
//!   and `${}` produces nothing. Any other body, `${ }` included, is an expression: a blank one
//!   is a syntax error when it is evaluated, as in Digdag.

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
    let mut pos = 0;
    while let Some(open) = next_opening(raw, pos) {
        let Some(len) = matching_brace(&raw[open + 2..]) else {
            // Unclosed: the rest of the string is literal text.
            break;
        };
        push_literal(&mut literal, &raw[pos..open]);
        let (start, end) = (open + 2, open + 2 + len);
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
    }
    push_literal(&mut literal, &raw[pos..]);
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Template {
        raw: raw.to_string(),
        parts,
    }
}

/// Appends literal `text` with every `$$` read as `$`.
fn push_literal(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find("$$") {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
}

/// The byte offset of the next `${` at or after `from` that opens a placeholder: something
/// follows it, and it is not an operator's `${word:` reference.
fn next_opening(raw: &str, from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        at += raw.get(at..)?.find("${")?;
        let after = &raw[at + 2..];
        if !after.is_empty() && !is_prefixed_reference(after) {
            return Some(at);
        }
        at += 1;
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
        // A blank body is an expression (a syntax error when evaluated), not nothing.
        check("${ }", "{ }");
        // Unclosed: the rest is text, with `$$` as `$` there too.
        check("${x $$", "<${x $>");
        check("a$${", "<a${>");
        check("${", "<${>");
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
        // `$` then a placeholder: the first `$` is text, the `${` after it opens (digdag.js).
        check("$${x}", "<$>{x}");
        check("$$${x}", "<$>{x}");
        check("$$$${x}", "<$$>{x}");
        check("a$$b${x}$$", "<a$b>{x}<$>");
        check("${x}$${y}", "{x}<$>{y}");
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
