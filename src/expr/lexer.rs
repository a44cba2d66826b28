//! Tokens of the JavaScript subset: numbers, strings, names, punctuators and regex literals.

use std::rc::Rc;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Num(f64),
    Str(Rc<str>),
    Ident(Rc<str>),
    Punct(&'static str),
    Regex(Rc<str>, Rc<str>),
    Eof,
}

/// A token and the byte offset where it starts in the expression source.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) offset: usize,
    /// A line break comes before this token (automatic semicolon insertion needs it).
    pub(crate) newline_before: bool,
}

/// A lexing failure at a byte offset of the expression source.
#[derive(Debug)]
pub(crate) struct LexError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

/// Longest first, so `===` wins over `==` and `=`.
const PUNCTS: &[&str] = &[
    ">>>=", "===", "!==", ">>>", "<<=", ">>=", "==", "!=", "<=", ">=", "&&", "||", "++", "--",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<", ">>", "{", "}", "(", ")", "[", "]", ";",
    ",", "<", ">", "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "?", ":", "=", ".",
];

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, LexError> {
    let bytes = src.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut newline = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() || c == 0x0b {
            newline |= c == b'\n' || c == b'\r';
            i += 1;
            continue;
        }
        // Other white space and line terminators of JavaScript (NBSP, BOM, U+2028, ...).
        if c >= 0x80 {
            if let Some(ch) = src[i..]
                .chars()
                .next()
                .filter(|ch| super::numbers::is_js_space(*ch))
            {
                newline |= matches!(ch, '\u{2028}' | '\u{2029}');
                i += ch.len_utf8();
                continue;
            }
        }
        if src[i..].starts_with("//") {
            // digdag.js pastes the expression into a line of its own code, which a comment
            // running to the end of the placeholder would swallow: a syntax error there.
            let Some(n) = src[i..].find(['\n', '\r', '\u{2028}', '\u{2029}']) else {
                return Err(LexError {
                    offset: i,
                    message: "a `//` comment must end with a line break inside `${...}` (Digdag fails otherwise); use `/* ... */`".into(),
                });
            };
            i += n;
            continue;
        }
        if src[i..].starts_with("/*") {
            let end = src[i + 2..].find("*/").ok_or_else(|| LexError {
                offset: i,
                message: "unterminated comment".into(),
            })?;
            newline |= src[i..i + end + 4].contains('\n');
            i += end + 4;
            continue;
        }
        let newline_before = std::mem::take(&mut newline);
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (n, len) = lex_number(&src[i..]).ok_or_else(|| LexError {
                offset: i,
                message: "invalid number".into(),
            })?;
            i += len;
            out.push(Token {
                tok: Tok::Num(n),
                offset: start,
                newline_before,
            });
            continue;
        }
        if c == b'"' || c == b'\'' {
            let (s, len) =
                lex_string(&src[i..]).map_err(|message| LexError { offset: i, message })?;
            i += len;
            out.push(Token {
                tok: Tok::Str(s.into()),
                offset: start,
                newline_before,
            });
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or(' ');
        if ch == '_' || ch == '$' || ch.is_alphabetic() {
            let len = src[i..]
                .char_indices()
                .find(|&(_, c)| !(c == '_' || c == '$' || c.is_alphanumeric()))
                .map_or(src.len() - i, |(n, _)| n);
            out.push(Token {
                tok: Tok::Ident(src[i..i + len].into()),
                offset: start,
                newline_before,
            });
            i += len;
            continue;
        }
        if c == b'/' && regex_allowed(out.last()) {
            let (source, flags, len) = lex_regex(&src[i..]).ok_or_else(|| LexError {
                offset: i,
                message: "unterminated regular expression".into(),
            })?;
            i += len;
            out.push(Token {
                tok: Tok::Regex(source.into(), flags.into()),
                offset: start,
                newline_before,
            });
            continue;
        }
        // Comparing the first byte before the whole slice keeps this off `memcmp`.
        let Some(p) = PUNCTS
            .iter()
            .find(|p| p.as_bytes()[0] == c && src[i..].starts_with(**p))
        else {
            return Err(LexError {
                offset: i,
                message: format!("unexpected character `{ch}`"),
            });
        };
        i += p.len();
        out.push(Token {
            tok: Tok::Punct(p),
            offset: start,
            newline_before,
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        offset: src.len(),
        newline_before: newline,
    });
    Ok(out)
}

/// A `/` starts a regex literal where an operand is expected, as in JavaScript.
fn regex_allowed(prev: Option<&Token>) -> bool {
    match prev.map(|t| &t.tok) {
        None => true,
        Some(Tok::Punct(p)) => !matches!(*p, ")" | "]" | "}"),
        Some(Tok::Ident(name)) => matches!(
            &**name,
            "return" | "typeof" | "in" | "of" | "new" | "delete" | "void" | "instanceof"
        ),
        Some(_) => false,
    }
}

fn lex_number(s: &str) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    if b.len() > 1 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        let len = 2 + s[2..].bytes().take_while(u8::is_ascii_hexdigit).count();
        if len == 2 {
            return None;
        }
        return Some((super::numbers::parse_int(&s[2..len], 16), len));
    }
    // ES5 Annex B: `012` is octal (10); with an 8 or 9 among its digits it is decimal (`019`).
    let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len > 1 && b[0] == b'0' {
        let digits = &s[..int_len];
        if digits.bytes().all(|c| c < b'8') {
            return Some((super::numbers::parse_int(digits, 8), int_len));
        }
        // `019.5` is an error in JavaScript, `019` is 19.
        if matches!(b.get(int_len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        return Some((digits.parse().ok()?, int_len));
    }
    let mut i = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if b.get(i) == Some(&b'.') {
        i += 1;
        i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let digits = b[j.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 {
            i = j + digits;
        }
    }
    let n: f64 = s[..i].parse().ok()?;
    Some((n, i))
}

fn lex_string(s: &str) -> Result<(String, usize), String> {
    let mut chars = s.char_indices();
    let Some((_, quote)) = chars.next() else {
        return Err("unterminated string".into());
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((out, i + 1));
        }
        if c == '\n' {
            break;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            // ES5 Annex B octal escapes: `\101` is `A`, `\0` a NUL, `\400` is ` ` + `0`.
            '0'..='7' => {
                let first = e.to_digit(8).unwrap_or(0);
                let max = if first <= 3 { 2 } else { 1 };
                let mut code = first;
                for _ in 0..max {
                    match chars.clone().next().and_then(|(_, c)| c.to_digit(8)) {
                        Some(d) => {
                            code = code * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            '\n' => {}
            'x' | 'u' => {
                let len = if e == 'x' { 2 } else { 4 };
                let hex: String = chars.by_ref().take(len).map(|(_, c)| c).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .map_err(|_| format!("invalid escape `\\{e}{hex}`"))?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            other => out.push(other),
        }
    }
    Err("unterminated string".into())
}

fn lex_regex(s: &str) -> Option<(String, String, usize)> {
    let mut in_class = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if c == '\n' {
            return None;
        }
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '[' {
            in_class = true;
        } else if c == ']' {
            in_class = false;
        } else if c == '/' && !in_class {
            let flags_len = s[i + 1..]
                .bytes()
                .take_while(u8::is_ascii_alphabetic)
                .count();
            let flags = s[i + 1..i + 1 + flags_len].to_string();
            return Some((s[1..i].to_string(), flags, i + 1 + flags_len));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn lexes_numbers_strings_and_regex() {
        assert_eq!(
            toks("1.5e3 'a\\n' (/x+/g"),
            vec![
                Tok::Num(1500.0),
                Tok::Str("a\n".into()),
                Tok::Punct("("),
                Tok::Regex("x+".into(), "g".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("a / 2"),
            vec![
                Tok::Ident("a".into()),
                Tok::Punct("/"),
                Tok::Num(2.0),
                Tok::Eof
            ]
        );
        assert_eq!(toks("0x1F")[0], Tok::Num(31.0));
    }

    #[test]
    fn rejects_unterminated_string() {
        assert!(tokenize("'abc").is_err());
    }
}
