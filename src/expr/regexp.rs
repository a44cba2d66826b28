//! JavaScript regular expressions on the `regex` crate: the ES5 syntax translated so it means
//! what it means in JavaScript (`\w`, `\d`, `\s` and `\b` are ASCII-based, `.` stops at any
//! line terminator, a `{` that is no quantifier is literal), and the matching loop JavaScript
//! uses for `g` (an empty match advances by one character, and may follow a match directly).
//! Backreferences and lookahead have no translation: they are errors.

use super::eval::JsError;
use super::value::{JsRegex, Value};
use std::fmt::Write as _;
use std::rc::Rc;

type R<T> = Result<T, JsError>;

const WORD: &str = "A-Za-z0-9_";
const DIGIT: &str = "0-9";
/// JavaScript's white space and line terminators (ES5 7.2, 7.3).
const SPACE: &str = r"\t\n\x0B\x0C\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

fn syntax_error(msg: impl std::fmt::Display) -> JsError {
    JsError::other(format!("SyntaxError: invalid regular expression: {msg}"))
}

/// A regex literal or `new RegExp(source, flags)` as a value.
pub(crate) fn make_regex(source: &str, flags: &str) -> R<Value> {
    Ok(Value::Regex(compile(source, flags)?))
}

/// Compiles a regex literal or `new RegExp(source, flags)` (flags `g`, `i`, `m`).
pub(crate) fn compile(source: &str, flags: &str) -> R<Rc<JsRegex>> {
    let (mut global, mut ignore_case, mut multiline) = (false, false, false);
    for f in flags.chars() {
        let seen = match f {
            'g' => std::mem::replace(&mut global, true),
            'i' => std::mem::replace(&mut ignore_case, true),
            'm' => std::mem::replace(&mut multiline, true),
            other => {
                return Err(JsError::other(format!(
                    "SyntaxError: unsupported regular expression flag `{other}`"
                )))
            }
        };
        if seen {
            return Err(JsError::other(format!(
                "SyntaxError: repeated regular expression flag `{f}`"
            )));
        }
    }
    let mut pattern = String::new();
    if ignore_case {
        pattern.push_str("(?i)");
    }
    if multiline {
        // CRLF mode makes `^`/`$` see `\r` as a line end too (not between `\r` and `\n`).
        pattern.push_str("(?mR)");
    }
    pattern.push_str(&translate(source)?);
    let regex = regex::RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| syntax_error(e.to_string().lines().last().unwrap_or("")))?;
    Ok(Rc::new(JsRegex {
        source: source.to_string(),
        global,
        ignore_case,
        multiline,
        regex,
    }))
}

/// A literal character, escaped whatever its meaning in the `regex` crate.
fn push_literal(out: &mut String, c: char) {
    if c.is_alphanumeric() || c == '_' || c == ' ' {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `s`: the quantifier's length.
fn quantifier_len(s: &[char]) -> Option<usize> {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while s.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if s.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    (s.get(i) == Some(&'}')).then_some(i + 1)
}

/// What `\x` means outside or inside a class: a set of characters (class contents), or one
/// character.
enum Escape {
    Set(String),
    Negated(String),
    Char(char),
    Boundary(bool),
}

/// Reads the escape after a `\` at `s[0]`; returns it and how many characters it used.
fn escape(s: &[char], in_class: bool) -> R<(Escape, usize)> {
    let Some(&c) = s.first() else {
        return Err(syntax_error("`\\` at the end of the pattern"));
    };
    let hex = |n: usize| -> Option<char> {
        let digits: String = s.get(1..=n)?.iter().collect();
        if digits.len() != n || !digits.chars().all(|d| d.is_ascii_hexdigit()) {
            return None;
        }
        char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
    };
    Ok(match c {
        'd' => (Escape::Set(DIGIT.into()), 1),
        'D' => (Escape::Negated(DIGIT.into()), 1),
        'w' => (Escape::Set(WORD.into()), 1),
        'W' => (Escape::Negated(WORD.into()), 1),
        's' => (Escape::Set(SPACE.into()), 1),
        'S' => (Escape::Negated(SPACE.into()), 1),
        'b' if in_class => (Escape::Char('\u{8}'), 1),
        'b' => (Escape::Boundary(true), 1),
        'B' if !in_class => (Escape::Boundary(false), 1),
        't' => (Escape::Char('\t'), 1),
        'n' => (Escape::Char('\n'), 1),
        'r' => (Escape::Char('\r'), 1),
        'v' => (Escape::Char('\u{b}'), 1),
        'f' => (Escape::Char('\u{c}'), 1),
        '0' if !s.get(1).is_some_and(char::is_ascii_digit) => (Escape::Char('\0'), 1),
        '1'..='9' if !in_class => {
            return Err(syntax_error(
                "backreferences (`\\1`) are not supported by spade's regular expressions",
            ))
        }
        'c' if s.get(1).is_some_and(char::is_ascii_alphabetic) => {
            (Escape::Char(char::from((s[1] as u8) % 32)), 2)
        }
        'x' => match hex(2) {
            Some(ch) => (Escape::Char(ch), 3),
            None => (Escape::Char('x'), 1),
        },
        'u' => match hex(4) {
            Some(ch) => (Escape::Char(ch), 5),
            None => (Escape::Char('u'), 1),
        },
        other => (Escape::Char(other), 1),
    })
}

/// The `regex` crate pattern for a JavaScript pattern.
pub(crate) fn translate(source: &str) -> R<String> {
    let s: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() + 16);
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        match c {
            '\\' => {
                let (e, used) = escape(&s[i + 1..], false)?;
                i += 1 + used;
                // `\w` and friends are ASCII sets: case folding must not widen them.
                match e {
                    Escape::Set(set) => {
                        let _ = write!(out, "(?-i:[{set}])");
                    }
                    Escape::Negated(set) => {
                        let _ = write!(out, "(?-i:[^{set}])");
                    }
                    Escape::Char(ch) => push_literal(&mut out, ch),
                    Escape::Boundary(true) => out.push_str(r"(?-u:\b)"),
                    Escape::Boundary(false) => out.push_str(r"(?-u:\B)"),
                }
                continue;
            }
            '.' => out.push_str(r"[^\n\r\x{2028}\x{2029}]"),
            '[' => {
                i = class(&s, i, &mut out)?;
                continue;
            }
            '(' => {
                if s.get(i + 1) == Some(&'?') {
                    if s.get(i + 2) == Some(&':') {
                        out.push_str("(?:");
                        i += 3;
                        continue;
                    }
                    return Err(syntax_error(
                        "lookahead (`(?=`, `(?!`) is not supported by spade's regular expressions",
                    ));
                }
                out.push('(');
            }
            '{' => match quantifier_len(&s[i..]) {
                Some(len) => {
                    out.extend(&s[i..i + len]);
                    i += len;
                    continue;
                }
                None => out.push_str(r"\{"),
            },
            '}' => out.push_str(r"\}"),
            ']' => out.push_str(r"\]"),
            ')' | '|' | '^' | '$' | '*' | '+' | '?' => out.push(c),
            other => push_literal(&mut out, other),
        }
        i += 1;
    }
    Ok(out)
}

/// A `[...]` class starting at `s[start]`; returns the index after it.
fn class(s: &[char], start: usize, out: &mut String) -> R<usize> {
    let mut i = start + 1;
    let negated = s.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut body = String::new();
    let mut empty = true;
    loop {
        let Some(&c) = s.get(i) else {
            return Err(syntax_error("unterminated character class"));
        };
        if c == ']' {
            i += 1;
            break;
        }
        empty = false;
        let (atom, used) = class_atom(&s[i..])?;
        i += used;
        // A range: two single characters around a `-` that does not end the class.
        if let (Escape::Char(lo), Some('-')) = (&atom, s.get(i)) {
            if s.get(i + 1).is_some_and(|c| *c != ']') {
                let (hi, used) = class_atom(&s[i + 1..])?;
                if let Escape::Char(hi) = hi {
                    if hi < *lo {
                        return Err(syntax_error("range out of order in character class"));
                    }
                    push_class_char(&mut body, *lo);
                    body.push('-');
                    push_class_char(&mut body, hi);
                    i += 1 + used;
                    continue;
                }
            }
        }
        push_class_atom(&mut body, &atom);
    }
    match (empty, negated) {
        // `[]` matches nothing and `[^]` anything, in JavaScript.
        (true, false) => out.push_str(r"[^\x{0}-\x{10FFFF}]"),
        (true, true) => out.push_str(r"[\x{0}-\x{10FFFF}]"),
        (false, _) => {
            out.push_str(if negated { "[^" } else { "[" });
            out.push_str(&body);
            out.push(']');
        }
    }
    Ok(i)
}

fn class_atom(s: &[char]) -> R<(Escape, usize)> {
    match s.first() {
        Some('\\') => {
            let (e, used) = escape(&s[1..], true)?;
            Ok((e, used + 1))
        }
        Some(&c) => Ok((Escape::Char(c), 1)),
        None => Err(syntax_error("unterminated character class")),
    }
}

fn push_class_char(body: &mut String, c: char) {
    if c.is_alphanumeric() {
        body.push(c);
    } else {
        let _ = write!(body, "\\x{{{:X}}}", c as u32);
    }
}

fn push_class_atom(body: &mut String, atom: &Escape) {
    match atom {
        Escape::Set(set) => body.push_str(set),
        Escape::Negated(set) => {
            let _ = write!(body, "[^{set}]");
        }
        Escape::Char(c) => push_class_char(body, *c),
        Escape::Boundary(_) => push_class_char(body, '\u{8}'),
    }
}

/// The matches a global regex finds, JavaScript's way: each search starts where the last
/// match ended, one character further after an empty match.
pub(crate) fn js_matches<'s>(re: &regex::Regex, s: &'s str) -> Vec<regex::Captures<'s>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at <= s.len() {
        let Some(caps) = re.captures_at(s, at) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        at = if m.end() == m.start() {
            m.end() + s[m.end()..].chars().next().map_or(1, char::len_utf8)
        } else {
            m.end()
        };
        out.push(caps);
    }
    out
}

/// `s.split(re, limit)` by ES5 15.5.4.14: captures go into the result, an empty match at
/// the start of what is left is skipped, `limit` counts every element.
pub(crate) fn split(re: &regex::Regex, s: &str, limit: usize) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    if limit == 0 {
        return out;
    }
    if s.is_empty() {
        if re.is_match(s) {
            return out;
        }
        return vec![Value::str(s)];
    }
    let mut p = 0;
    let mut q = 0;
    while q < s.len() {
        let Some(caps) = re.captures_at(s, q) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        if m.start() >= s.len() {
            break;
        }
        if m.end() == p {
            // An empty match where the last piece ended: try one character further.
            q = m.start() + s[m.start()..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        out.push(Value::str(&s[p..m.start()]));
        if out.len() == limit {
            return out;
        }
        for g in caps.iter().skip(1) {
            out.push(g.map_or(Value::Undefined, |g| Value::str(g.as_str())));
            if out.len() == limit {
                return out;
            }
        }
        p = m.end();
        q = p;
    }
    out.push(Value::str(&s[p..]));
    out
}
