//! nom parsers: `.dig` text -> spanned [`Value`] tree (the YAML subset of `grammar/dig.md`).
//!
//! Block structure is indentation-sensitive, so it is parsed by a cursor that walks lines and
//! compares columns (the line-splitting half, like just's INDENT/DEDENT lexer). Tokens inside a
//! line (keys, quoted scalars, block scalar headers) are nom parsers with our own error type.
//! Every function named `parse_*` is one production of `grammar/dig.md`. The first syntax error
//! stops the parse.

use crate::diag::{Diagnostic, FileId, Span};
use crate::dig::scalar::{read_plain, Plain};
use crate::dig::template;
use crate::dig::value::{Key, Map, Value, ValueKind};
use nom::branch::alt;
use nom::bytes::complete::{is_not, tag};
use nom::character::complete::{anychar, char as nom_char, one_of};
use nom::combinator::{cut, opt, recognize};
use nom::error::{context, ContextError, ErrorKind, ParseError};
use nom::multi::many0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser as _};
use std::collections::HashMap;

/// The nom error: how much input was left where it failed, and what was expected there.
///
/// Remaining length instead of a pointer keeps it `Copy` and turns into an offset into the
/// whole text with `whole.len() - rest_len`, without nom's `ErrorKind` names reaching users.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PError {
    rest_len: usize,
    expected: &'static str,
}

impl ParseError<&str> for PError {
    fn from_error_kind(input: &str, _kind: ErrorKind) -> PError {
        PError {
            rest_len: input.len(),
            expected: "valid syntax",
        }
    }

    fn append(_input: &str, _kind: ErrorKind, other: PError) -> PError {
        other
    }
}

impl ContextError<&str> for PError {
    fn add_context(_input: &str, expected: &'static str, other: PError) -> PError {
        PError { expected, ..other }
    }
}

type NomResult<'a, T> = IResult<&'a str, T, PError>;

/// A syntax error as byte offsets; [`parse_file`] turns it into a [`Diagnostic`].
#[derive(Debug)]
struct SyntaxError {
    start: usize,
    end: usize,
    message: String,
    help: Option<String>,
}

type PResult<T> = Result<T, SyntaxError>;

/// Parses a whole file. `Ok(None)` is an empty document (only blank lines and comments).
pub(crate) fn parse_file(file: FileId, src: &str) -> Result<Option<Value>, Diagnostic> {
    let mut p = Cursor {
        src,
        bytes: src.as_bytes(),
        file,
        pos: 0,
    };
    p.parse_document().map_err(|e| {
        let d = Diagnostic::error(Span::new(file, e.start, e.end), e.message);
        match e.help {
            Some(h) => d.with_help(h),
            None => d,
        }
    })
}

/// `'` body `'`; the body keeps `''` undecoded.
pub(crate) fn parse_single_quoted(i: &str) -> NomResult<'_, &str> {
    delimited(
        nom_char('\''),
        recognize(many0(alt((tag("''"), is_not("'"))))),
        cut(context("closing `'`", nom_char('\''))),
    )
    .parse(i)
}

/// `"` body `"`; the body keeps its escapes undecoded.
pub(crate) fn parse_double_quoted(i: &str) -> NomResult<'_, &str> {
    delimited(
        nom_char('"'),
        recognize(many0(alt((
            recognize(preceded(nom_char('\\'), anychar)),
            is_not("\"\\"),
        )))),
        cut(context("closing `\"`", nom_char('"'))),
    )
    .parse(i)
}

/// The header of a block scalar: `|` or `>`, then chomping and indentation indicators in
/// either order.
pub(crate) fn parse_block_header(i: &str) -> NomResult<'_, BlockHeader> {
    let (i, style) = one_of("|>")(i)?;
    let (i, first) = opt(one_of("+-123456789")).parse(i)?;
    let (i, second) = opt(one_of("+-123456789")).parse(i)?;
    let mut header = BlockHeader {
        folded: style == '>',
        chomp: Chomp::Clip,
        indent: None,
    };
    let mut seen_chomp = false;
    for c in [first, second].into_iter().flatten() {
        match c {
            '+' | '-' if !seen_chomp => {
                seen_chomp = true;
                header.chomp = if c == '+' { Chomp::Keep } else { Chomp::Strip };
            }
            '1'..='9' if header.indent.is_none() => {
                header.indent = c.to_digit(10).map(|d| d as usize);
            }
            _ => {
                return Err(nom::Err::Failure(PError {
                    rest_len: i.len() + 1,
                    expected: "one chomping (`-`, `+`) and one indentation (`1`-`9`) indicator",
                }))
            }
        }
    }
    Ok((i, header))
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BlockHeader {
    folded: bool,
    chomp: Chomp,
    /// The explicit indentation indicator, relative to the parent node's indentation.
    indent: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Chomp {
    Strip,
    Clip,
    Keep,
}

/// Where a plain scalar is: flow context stops at `,[]{}` and `: ` ends a key.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Block,
    Flow,
}

struct Cursor<'a> {
    src: &'a str,
    bytes: &'a [u8],
    file: FileId,
    pos: usize,
}

fn is_ws(b: Option<u8>) -> bool {
    matches!(b, Some(b' ' | b'\t'))
}

fn is_flow_indicator(b: Option<u8>) -> bool {
    matches!(b, Some(b',' | b'[' | b']' | b'{' | b'}'))
}

impl<'a> Cursor<'a> {
    fn byte(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn peek(&self) -> Option<u8> {
        self.byte(self.pos)
    }

    fn is_eof(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// A line ends at `\n`, `\r\n`, a lone `\r`, or the end of the text.
    fn is_eol(&self, i: usize) -> bool {
        matches!(self.byte(i), None | Some(b'\n' | b'\r'))
    }

    fn line_start(&self, i: usize) -> usize {
        let i = i.min(self.bytes.len());
        self.bytes[..i]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |n| n + 1)
    }

    fn col(&self, i: usize) -> usize {
        i - self.line_start(i)
    }

    fn line_of(&self, i: usize) -> usize {
        let i = i.min(self.bytes.len());
        self.bytes[..i].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    fn node(&self, kind: ValueKind, start: usize, end: usize) -> Value {
        Value {
            kind,
            span: self.span(start, end),
        }
    }

    /// The end of the token at `i` (up to whitespace or end of line), for error carets.
    fn token_end(&self, i: usize) -> usize {
        let mut j = i;
        while !self.is_eol(j) && !is_ws(self.byte(j)) {
            j += 1;
        }
        // Stay on a char boundary so `&src[span]` never panics.
        while j < self.bytes.len() && !self.src.is_char_boundary(j) {
            j += 1;
        }
        j.max(i + usize::from(i < self.bytes.len()))
    }

    fn char_end(&self, i: usize) -> usize {
        let mut j = i + 1;
        while j < self.bytes.len() && !self.src.is_char_boundary(j) {
            j += 1;
        }
        j.min(self.bytes.len().max(i))
    }

    fn fail<T>(&self, start: usize, end: usize, message: impl Into<String>) -> PResult<T> {
        Err(SyntaxError {
            start,
            end,
            message: message.into(),
            help: None,
        })
    }

    fn fail_help<T>(
        &self,
        start: usize,
        end: usize,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> PResult<T> {
        Err(SyntaxError {
            start,
            end,
            message: message.into(),
            help: Some(help.into()),
        })
    }

    fn skip_inline_ws(&mut self) {
        while is_ws(self.peek()) {
            self.pos += 1;
        }
    }

    fn skip_to_eol(&mut self) {
        while !self.is_eol(self.pos) {
            self.pos += 1;
        }
    }

    fn skip_newline(&mut self) {
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        if self.peek() == Some(b'\n') {
            self.pos += 1;
        }
    }

    /// After a value: optional spaces and comment, then the end of the line, which is consumed.
    fn finish_line(&mut self) -> PResult<()> {
        self.skip_inline_ws();
        if self.peek() == Some(b'#') {
            self.skip_to_eol();
        }
        if !self.is_eol(self.pos) {
            let found = self
                .src
                .get(self.pos..self.token_end(self.pos))
                .unwrap_or("");
            let before = self.src[..self.pos].trim_end_matches([' ', '\t']);
            let help = match before.as_bytes().last() {
                Some(b'\'') => "the single-quoted value ended at the `'` before this; inside single quotes, write a quote as `''`",
                Some(b'"') => "the double-quoted value ended at the `\"` before this; inside double quotes, write a quote as `\\\"`",
                _ => "a value ends at the end of its line; quote it if it contains `: `, `#` or quotes",
            };
            return self.fail_help(
                self.pos,
                self.token_end(self.pos),
                format!("expected the end of the line, found `{found}`"),
                help,
            );
        }
        self.skip_newline();
        Ok(())
    }

    /// From a line start: skips blank and comment lines and stops at the first content char.
    fn skip_blank_lines(&mut self) -> PResult<()> {
        loop {
            let line = self.pos;
            let mut i = line;
            while is_ws(self.byte(i)) {
                i += 1;
            }
            if self.is_eol(i) || self.byte(i) == Some(b'#') {
                self.pos = i;
                self.skip_to_eol();
                if self.is_eof() {
                    return Ok(());
                }
                self.skip_newline();
                continue;
            }
            if let Some(tab) = self.bytes[line..i].iter().position(|&b| b == b'\t') {
                return self.fail_help(
                    line + tab,
                    line + tab + 1,
                    "tab character used for indentation",
                    "indent with spaces: YAML does not allow tabs in indentation",
                );
            }
            self.pos = i;
            return Ok(());
        }
    }

    fn is_seq_entry(&self, i: usize) -> bool {
        self.byte(i) == Some(b'-') && (self.is_eol(i + 1) || is_ws(self.byte(i + 1)))
    }

    fn is_doc_marker(&self, i: usize) -> bool {
        self.col(i) == 0
            && (self.src[i..].starts_with("---") || self.src[i..].starts_with("..."))
            && (self.is_eol(i + 3) || is_ws(self.byte(i + 3)))
    }

    /// Whether the content at `i` is `key:` (plain, quoted or `!include`) on this line.
    fn looks_like_key(&self, i: usize) -> bool {
        let rest = &self.src[i..];
        let after = match self.byte(i) {
            Some(b'"') => parse_double_quoted(rest).ok().map(|(r, _)| r),
            Some(b'\'') => parse_single_quoted(rest).ok().map(|(r, _)| r),
            Some(b'!') => rest.strip_prefix("!include"),
            Some(b'[' | b'{' | b'|' | b'>' | b'&' | b'*' | b'#' | b'%' | b'@' | b'`') => None,
            _ if self.is_seq_entry(i) => None,
            _ => return self.plain_key_end(i).is_some(),
        };
        let Some(after) = after else {
            return false;
        };
        // A quoted key must end on its own line before its `:`.
        if self.src[i..self.bytes.len() - after.len()].contains('\n') {
            return false;
        }
        let after = after.trim_start_matches([' ', '\t']);
        after.starts_with(':')
            && matches!(
                after.as_bytes().get(1),
                None | Some(b' ' | b'\t' | b'\n' | b'\r')
            )
    }

    /// The offset of the `:` ending a plain key that starts at `i`, if the line has one.
    fn plain_key_end(&self, i: usize) -> Option<usize> {
        let mut j = i;
        while !self.is_eol(j) {
            let b = self.byte(j);
            if b == Some(b'#') && j > i && is_ws(self.byte(j - 1)) {
                return None;
            }
            if b == Some(b':') && (self.is_eol(j + 1) || is_ws(self.byte(j + 1))) {
                return Some(j);
            }
            j += 1;
        }
        None
    }

    fn parse_document(&mut self) -> PResult<Option<Value>> {
        self.skip_blank_lines()?;
        if self.peek() == Some(b'%') {
            return self.fail_help(
                self.pos,
                self.token_end(self.pos),
                "unsupported YAML directive",
                "remove the `%` line",
            );
        }
        if self.src[self.pos..].starts_with("---") && self.is_doc_marker(self.pos) {
            self.pos += 3;
            self.finish_line()?;
            self.skip_blank_lines()?;
        }
        if self.is_eof() {
            return Ok(None);
        }
        let value = self.parse_block_node(-1, false)?;
        if !self.is_eof() {
            return self.unexpected_line();
        }
        Ok(value)
    }

    /// An error for a content line that fits no enclosing block.
    fn unexpected_line<T>(&self) -> PResult<T> {
        if self.is_doc_marker(self.pos) {
            return self.fail_help(
                self.pos,
                self.pos + 3,
                "a second YAML document is not supported",
                "a workflow file holds one document: remove this marker and what follows, or merge it",
            );
        }
        self.fail_help(
            self.pos,
            self.token_end(self.pos),
            "bad indentation: this line does not line up with the lines above",
            "indent the keys of one mapping (and the `-` of one sequence) by the same number of spaces",
        )
    }

    /// A block node starting at the current content char, more indented than `parent`
    /// (or at `parent` for a sequence under a key, when `indentless`). `None`: no node here.
    fn parse_block_node(&mut self, parent: isize, indentless: bool) -> PResult<Option<Value>> {
        if self.is_eof() {
            return Ok(None);
        }
        let n = self.col(self.pos);
        let col = isize::try_from(n).unwrap_or(isize::MAX);
        let seq = self.is_seq_entry(self.pos);
        if col < parent || (col == parent && !(indentless && seq)) {
            return Ok(None);
        }
        if seq {
            return self.parse_block_seq(n).map(Some);
        }
        if self.is_doc_marker(self.pos) {
            return self.unexpected_line();
        }
        if self.looks_like_key(self.pos) {
            return self.parse_block_map(n).map(Some);
        }
        let value = self.parse_inline_value(parent)?;
        self.finish_line()?;
        self.skip_blank_lines()?;
        Ok(Some(value))
    }

    /// `key: value` lines at column `n`.
    fn parse_block_map(&mut self, n: usize) -> PResult<Value> {
        let start = self.pos;
        let mut end = start;
        let mut map = Map::default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        loop {
            if self.is_doc_marker(self.pos) {
                return self.unexpected_line();
            }
            if self.is_seq_entry(self.pos) {
                return self.fail_help(
                    self.pos,
                    self.pos + 1,
                    "a sequence item `-` among the keys of a mapping",
                    "indent the `-` items under the key they belong to, or turn this item into `key: value`",
                );
            }
            let key = self.parse_key()?;
            let colon_end = self.pos;
            self.skip_inline_ws();
            let value = if self.is_eol(self.pos) || self.peek() == Some(b'#') {
                self.finish_line()?;
                self.skip_blank_lines()?;
                let isize_n = isize::try_from(n).unwrap_or(isize::MAX);
                match self.parse_block_node(isize_n, true)? {
                    Some(v) => v,
                    None => self.node(ValueKind::Null, colon_end, colon_end),
                }
            } else {
                if self.is_seq_entry(self.pos) {
                    return self.fail_help(
                        self.pos,
                        self.pos + 1,
                        "a sequence cannot start on the line of its key",
                        format!(
                            "move `- ...` to the next line, indented under `{}:`",
                            key.name
                        ),
                    );
                }
                let v = self.parse_inline_value(isize::try_from(n).unwrap_or(isize::MAX))?;
                self.finish_line()?;
                self.skip_blank_lines()?;
                v
            };
            self.check_duplicate(&map.entries, &mut seen, &key)?;
            end = end.max(value.span.end as usize).max(key.span.end as usize);
            map.entries.push((key, value));
            if self.is_eof() {
                break;
            }
            let c = self.col(self.pos);
            if c < n {
                break;
            }
            if c > n {
                return self.unexpected_line();
            }
        }
        Ok(self.node(ValueKind::Map(map), start, end))
    }

    /// Fails when `key` is already among `entries`. Small mappings (nearly all of them) are
    /// scanned; `seen` indexes the keys of big ones so a long file stays linear.
    fn check_duplicate(
        &self,
        entries: &[(Key, Value)],
        seen: &mut HashMap<String, usize>,
        key: &Key,
    ) -> PResult<()> {
        const SCAN_LIMIT: usize = 16;
        // `!include` keys may repeat: Digdag gives each a unique name (spec 1.4).
        if key.name == "!include" {
            return Ok(());
        }
        let first = if entries.len() < SCAN_LIMIT {
            entries
                .iter()
                .find(|(k, _)| k.name == key.name)
                .map(|(k, _)| k.span.start as usize)
        } else {
            if seen.is_empty() {
                for (k, _) in entries {
                    seen.insert(k.name.clone(), k.span.start as usize);
                }
            }
            let found = seen.get(&key.name).copied();
            seen.insert(key.name.clone(), key.span.start as usize);
            found
        };
        if let Some(first) = first {
            let line = self.line_of(first);
            return self.fail_help(
                key.span.start as usize,
                key.span.end as usize,
                format!("duplicate key `{}`", key.name),
                format!(
                    "`{}` is already defined on line {line}: remove or rename one of them",
                    key.name
                ),
            );
        }
        Ok(())
    }

    /// A mapping key and its `:`.
    fn parse_key(&mut self) -> PResult<Key> {
        let start = self.pos;
        let rest = &self.src[start..];
        let (name, key_end) = match self.peek() {
            Some(b'"' | b'\'') => {
                let v = self.parse_quoted()?;
                let name = v.as_template().map(|t| t.raw.clone()).unwrap_or_default();
                (name, self.pos)
            }
            Some(b'!') if rest.starts_with("!include") => {
                self.pos += "!include".len();
                ("!include".to_string(), self.pos)
            }
            Some(b'!') => return self.tag_error(),
            Some(b'&' | b'*') => return self.anchor_error(),
            Some(b'?') if is_ws(self.byte(start + 1)) || self.is_eol(start + 1) => {
                return self.fail_help(
                    start,
                    start + 1,
                    "complex keys (`? key`) are not supported",
                    "write the key as a plain or quoted scalar followed by `:`",
                )
            }
            _ => match self.plain_key_end(start) {
                Some(colon) => {
                    let name = self.src[start..colon].trim_end_matches([' ', '\t']);
                    self.pos = colon;
                    (name.to_string(), start + name.len())
                }
                None => {
                    let end = self.token_end(start);
                    let found = self.src.get(start..end).unwrap_or("");
                    return self.fail_help(
                        start,
                        end,
                        format!("expected `key: value`, found `{found}`"),
                        "is a `:` missing? a value that continues on the next line must be indented more than its key",
                    );
                }
            },
        };
        self.skip_inline_ws();
        if self.peek() != Some(b':')
            || !(self.is_eol(self.pos + 1) || is_ws(self.byte(self.pos + 1)))
        {
            return self.fail_help(
                self.pos,
                self.token_end(self.pos),
                format!("expected `:` after the key `{name}`"),
                "write `key: value`, with a space after the `:`",
            );
        }
        self.pos += 1;
        Ok(Key {
            name,
            span: self.span(start, key_end),
        })
    }

    fn anchor_error<T>(&self) -> PResult<T> {
        let start = self.pos;
        let end = self.token_end(start);
        let text = self.src.get(start..end).unwrap_or("");
        if self.peek() == Some(b'&') {
            self.fail_help(
                start,
                end,
                format!("unsupported YAML anchor `{text}`"),
                "repeat the value, or share it through `_export:`",
            )
        } else {
            self.fail_help(
                start,
                end,
                format!("unsupported YAML alias `{text}`"),
                "a value that starts with `*` (like a cron expression) must be quoted: `'*/5 * * * *'`",
            )
        }
    }

    fn tag_error<T>(&self) -> PResult<T> {
        let start = self.pos;
        let end = self.token_end(start);
        let text = self.src.get(start..end).unwrap_or("");
        if text == "!include" {
            return self.fail_help(
                start,
                end,
                "`!include` works only as a key",
                "write `!include : file.dig` as an entry of the mapping the file is merged into",
            );
        }
        self.fail_help(
            start,
            end,
            format!("unsupported YAML tag `{text}`"),
            "remove the tag; the only tag spade reads is the key `!include : file.dig`",
        )
    }

    /// `- item` lines at column `n`.
    fn parse_block_seq(&mut self, n: usize) -> PResult<Value> {
        let start = self.pos;
        let mut end = start + 1;
        let mut items = Vec::new();
        let parent = isize::try_from(n).unwrap_or(isize::MAX);
        loop {
            let dash = self.pos;
            self.pos += 1;
            self.skip_inline_ws();
            let item = if self.is_eol(self.pos) || self.peek() == Some(b'#') {
                self.finish_line()?;
                self.skip_blank_lines()?;
                match self.parse_block_node(parent, false)? {
                    Some(v) => v,
                    None => self.node(ValueKind::Null, dash + 1, dash + 1),
                }
            } else {
                let m = self.col(self.pos);
                if self.is_seq_entry(self.pos) {
                    self.parse_block_seq(m)?
                } else if self.looks_like_key(self.pos) {
                    self.parse_block_map(m)?
                } else {
                    let v = self.parse_inline_value(parent)?;
                    self.finish_line()?;
                    self.skip_blank_lines()?;
                    v
                }
            };
            end = end.max(item.span.end as usize);
            items.push(item);
            if self.is_eof() {
                break;
            }
            let c = self.col(self.pos);
            if c == n && self.is_seq_entry(self.pos) {
                continue;
            }
            if c <= n {
                break;
            }
            return self.unexpected_line();
        }
        Ok(self.node(ValueKind::Seq(items), start, end))
    }

    /// A node that starts on the current line after a key or `- `.
    fn parse_inline_value(&mut self, parent: isize) -> PResult<Value> {
        match self.peek() {
            Some(b'&' | b'*') => self.anchor_error(),
            Some(b'!') => self.tag_error(),
            Some(b'|' | b'>') => self.parse_block_scalar(parent),
            Some(b'[' | b'{') => self.parse_flow(parent),
            Some(b'"' | b'\'') => self.parse_quoted(),
            Some(b @ (b'%' | b'@' | b'`' | b',' | b']' | b'}')) => self.fail_help(
                self.pos,
                self.pos + 1,
                format!("a plain value cannot start with `{}`", char::from(b)),
                "quote the value",
            ),
            Some(b'?' | b':') if is_ws(self.byte(self.pos + 1)) || self.is_eol(self.pos + 1) => {
                self.fail_help(
                    self.pos,
                    self.pos + 1,
                    "a plain value cannot start with `? ` or `: `",
                    "quote the value",
                )
            }
            _ => self.parse_plain(parent, Ctx::Block),
        }
    }

    /// Scans one line of a plain scalar from `i`; returns the end of its text (trailing
    /// spaces excluded). In block context `: ` inside the text is an error.
    fn scan_plain_line(&self, i: usize, ctx: Ctx) -> PResult<usize> {
        let mut j = i;
        let mut end = i;
        while !self.is_eol(j) {
            let b = self.byte(j);
            if b == Some(b'#') && j > i && is_ws(self.byte(j - 1)) {
                break;
            }
            if b == Some(b':')
                && (self.is_eol(j + 1)
                    || is_ws(self.byte(j + 1))
                    || (ctx == Ctx::Flow && is_flow_indicator(self.byte(j + 1))))
            {
                if ctx == Ctx::Flow {
                    break;
                }
                let mut eol = j;
                while !self.is_eol(eol) {
                    eol += 1;
                }
                let text = self.src.get(i..eol).unwrap_or("").trim_end();
                return self.fail_help(
                    j,
                    j + 1,
                    "a plain value cannot contain `: `",
                    format!("quote the whole value: `'{text}'`, or start a nested mapping on the next line"),
                );
            }
            if ctx == Ctx::Flow && is_flow_indicator(b) {
                break;
            }
            if !is_ws(b) {
                end = j + 1;
            }
            j += 1;
        }
        Ok(end)
    }

    /// An unquoted scalar; in block context it may continue on more-indented lines.
    fn parse_plain(&mut self, parent: isize, ctx: Ctx) -> PResult<Value> {
        let start = self.pos;
        let mut end = self.scan_plain_line(start, ctx)?;
        if end == start {
            return self.fail(start, self.char_end(start), "expected a value");
        }
        let mut folded: Option<String> = None;
        if ctx == Ctx::Block {
            while let Some((content, breaks)) = self.plain_continuation(end, parent) {
                if self.looks_like_key(content) {
                    self.pos = content;
                    return self.fail_help(
                        content,
                        self.token_end(content),
                        "bad indentation: this key is indented deeper than the keys above it",
                        "indent the keys of one mapping by the same number of spaces; to nest a mapping, leave the parent key's value empty",
                    );
                }
                let line_end = self.scan_plain_line(content, ctx)?;
                let text = folded.get_or_insert_with(|| self.src[start..end].to_string());
                if breaks == 0 {
                    text.push(' ');
                } else {
                    text.extend(std::iter::repeat_n('\n', breaks));
                }
                text.push_str(&self.src[content..line_end]);
                end = line_end;
            }
        }
        self.pos = end;
        let span = self.span(start, end);
        let kind = match folded {
            None => {
                let text = &self.src[start..end];
                match read_plain(text) {
                    Plain::Null => ValueKind::Null,
                    Plain::Bool(b) => ValueKind::Bool(b),
                    Plain::Int(i) => ValueKind::Int(i),
                    Plain::Float(f) => ValueKind::Float(f),
                    Plain::Str => ValueKind::Str(template::split_exact(text, self.file, start)),
                }
            }
            Some(text) => ValueKind::Str(template::split(&text, span)),
        };
        Ok(Value { kind, span })
    }

    /// The next line that continues a plain scalar ending at `end`: its content offset and
    /// the number of blank lines before it.
    fn plain_continuation(&self, end: usize, parent: isize) -> Option<(usize, usize)> {
        let mut k = end;
        while is_ws(self.byte(k)) {
            k += 1;
        }
        if !self.is_eol(k) || self.byte(k).is_none() {
            return None; // a comment ends the scalar
        }
        let mut breaks = 0;
        loop {
            if self.byte(k) == Some(b'\r') {
                k += 1;
            }
            if self.byte(k) == Some(b'\n') {
                k += 1;
            }
            let line = k;
            while self.byte(k) == Some(b' ') {
                k += 1;
            }
            self.byte(k)?;
            if self.is_eol(k) {
                breaks += 1;
                continue;
            }
            let col = isize::try_from(k - line).unwrap_or(isize::MAX);
            if self.byte(k) == Some(b'#') || self.byte(k) == Some(b'\t') || col <= parent {
                return None;
            }
            return Some((k, breaks));
        }
    }

    /// A single- or double-quoted scalar, possibly spanning lines.
    fn parse_quoted(&mut self) -> PResult<Value> {
        let start = self.pos;
        let rest = &self.src[start..];
        let double = self.peek() == Some(b'"');
        let parsed = if double {
            parse_double_quoted(rest)
        } else {
            parse_single_quoted(rest)
        };
        let Ok((after, body)) = parsed else {
            {
                let (what, quote) = if double {
                    ("double-quoted", "\"")
                } else {
                    ("single-quoted", "'")
                };
                return self.fail_help(
                    start,
                    start + 1,
                    format!("unclosed {what} string"),
                    format!("add the closing `{quote}`; a quoted value may span lines, so everything after this quote was read as part of it"),
                );
            }
        };
        let end = self.bytes.len() - after.len();
        let body_start = start + 1;
        let verbatim =
            !body.contains(['\n', '\r']) && !body.contains(if double { '\\' } else { '\'' });
        let span = self.span(start, end);
        let text = if double {
            self.decode_double(body, body_start)?
        } else {
            fold_lines(&body.replace("''", "'"))
        };
        self.pos = end;
        let template = if verbatim {
            template::split_exact(&text, self.file, body_start)
        } else {
            template::split(&text, span)
        };
        Ok(Value {
            kind: ValueKind::Str(template),
            span,
        })
    }

    fn decode_double(&self, body: &str, body_start: usize) -> PResult<String> {
        let mut out = String::with_capacity(body.len());
        // Text between escapes is folded like single-quoted text; escapes are decoded after
        // folding so an escaped `\n` or trailing space is never trimmed.
        let mut chars = body.char_indices().peekable();
        let mut run = String::new();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                run.push(c);
                continue;
            }
            let Some((j, e)) = chars.next() else {
                break;
            };
            // A `\` before a line break joins the lines with nothing between them.
            if e == '\r' || e == '\n' {
                out.push_str(&fold_lines(&run));
                run.clear();
                if e == '\r' && chars.peek().map(|&(_, c)| c) == Some('\n') {
                    chars.next();
                }
                while matches!(chars.peek(), Some(&(_, ' ' | '\t'))) {
                    chars.next();
                }
                continue;
            }
            out.push_str(&fold_lines(&run));
            run.clear();
            let simple = match e {
                '0' => Some('\0'),
                'a' => Some('\x07'),
                'b' => Some('\x08'),
                't' | '\t' => Some('\t'),
                'n' => Some('\n'),
                'v' => Some('\x0b'),
                'f' => Some('\x0c'),
                'r' => Some('\r'),
                'e' => Some('\x1b'),
                ' ' => Some(' '),
                '"' => Some('"'),
                '/' => Some('/'),
                '\\' => Some('\\'),
                'N' => Some('\u{85}'),
                '_' => Some('\u{a0}'),
                'L' => Some('\u{2028}'),
                'P' => Some('\u{2029}'),
                _ => None,
            };
            if let Some(c) = simple {
                out.push(c);
                continue;
            }
            let digits = match e {
                'x' => 2,
                'u' => 4,
                'U' => 8,
                _ => {
                    let at = body_start + i;
                    return self.fail_help(
                        at,
                        body_start + j + e.len_utf8(),
                        format!("unknown escape `\\{e}` in a double-quoted string"),
                        "write `\\\\` for a backslash, or use single quotes, where `\\` is literal",
                    );
                }
            };
            let hex: String = (0..digits)
                .filter_map(|_| chars.next().map(|(_, c)| c))
                .collect();
            let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
            match decoded {
                Some(c) if hex.len() == digits => out.push(c),
                _ => {
                    let at = body_start + i;
                    return self.fail(
                        at,
                        (at + 2 + hex.len()).min(body_start + body.len()),
                        format!("bad escape `\\{e}{hex}`: expected {digits} hex digits of a Unicode scalar value"),
                    );
                }
            }
        }
        out.push_str(&fold_lines(&run));
        Ok(out)
    }

    /// `|` or `>` with its indented lines.
    fn parse_block_scalar(&mut self, parent: isize) -> PResult<Value> {
        let start = self.pos;
        let header = match parse_block_header(&self.src[start..]) {
            Ok((rest, h)) => {
                self.pos = self.bytes.len() - rest.len();
                h
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                let at = self.bytes.len() - e.rest_len;
                return self.fail(at, self.char_end(at), format!("expected {}", e.expected));
            }
            Err(nom::Err::Incomplete(_)) => {
                return self.fail(start, start + 1, "incomplete block scalar header")
            }
        };
        self.skip_inline_ws();
        if self.peek() == Some(b'#') {
            self.skip_to_eol();
        }
        if !self.is_eol(self.pos) {
            return self.fail_help(
                self.pos,
                self.token_end(self.pos),
                "expected the end of the line after a block scalar header",
                "the text of a `|` or `>` block starts on the next line, indented",
            );
        }
        let header_end = self.pos;
        let base = usize::try_from(parent.max(0)).unwrap_or(0);
        let mut indent = header.indent.map(|d| base + d);
        // (content start, end) per line; `None` is a blank line.
        let mut lines: Vec<Option<(usize, usize)>> = Vec::new();
        let mut consumed = header_end;
        let mut k = header_end;
        loop {
            if self.byte(k) == Some(b'\r') {
                k += 1;
            }
            if self.byte(k) == Some(b'\n') {
                k += 1;
            } else {
                break;
            }
            let line = k;
            let mut c = line;
            while self.byte(c) == Some(b' ') {
                c += 1;
            }
            let spaces = c - line;
            let mut eol = c;
            while !self.is_eol(eol) {
                eol += 1;
            }
            let blank = eol == c;
            let ind = match indent {
                Some(i) => i,
                None if blank => {
                    lines.push(None);
                    consumed = eol;
                    k = eol;
                    continue;
                }
                None => {
                    if isize::try_from(spaces).unwrap_or(isize::MAX) <= parent {
                        break;
                    }
                    indent = Some(spaces);
                    spaces
                }
            };
            if blank {
                lines.push((spaces > ind).then_some((line + ind, eol)));
            } else if spaces < ind {
                break;
            } else {
                lines.push(Some((line + ind, eol)));
            }
            consumed = eol;
            k = eol;
        }
        self.pos = consumed;
        let texts: Vec<Option<&str>> = lines
            .iter()
            .map(|l| l.map(|(s, e)| self.src.get(s..e).unwrap_or("")))
            .collect();
        let text = block_text(&texts, header);
        let last_content = lines
            .iter()
            .rev()
            .find_map(|l| *l)
            .map_or(header_end, |(_, e)| e);
        let span = self.span(start, last_content);
        Ok(Value {
            kind: ValueKind::Str(template::split(&text, span)),
            span,
        })
    }

    /// Whitespace, line breaks and comments inside `[...]`/`{...}`. A continuation line that is
    /// not indented past the enclosing block means the collection was never closed.
    fn skip_flow_ws(&mut self, open: usize, parent: isize) -> PResult<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => self.pos += 1,
                Some(b'#') => self.skip_to_eol(),
                Some(b'\r' | b'\n') => {
                    self.skip_newline();
                    let line = self.pos;
                    let mut c = line;
                    while is_ws(self.byte(c)) {
                        c += 1;
                    }
                    let col = isize::try_from(c - line).unwrap_or(isize::MAX);
                    let closing = matches!(self.byte(c), Some(b']' | b'}'));
                    if !self.is_eol(c) && self.byte(c) != Some(b'#') && col <= parent && !closing {
                        return self.unclosed(open);
                    }
                }
                None => return self.unclosed(open),
                Some(_) => return Ok(()),
            }
        }
    }

    fn unclosed<T>(&self, open: usize) -> PResult<T> {
        let (what, close) = if self.byte(open) == Some(b'[') {
            ("sequence", "]")
        } else {
            ("mapping", "}")
        };
        self.fail_help(
            open,
            open + 1,
            format!("unclosed flow {what}: this `{}` has no matching `{close}`", &self.src[open..open + 1]),
            format!("add `{close}` after the last entry; a flow collection may span lines, but its lines must be indented more than its key"),
        )
    }

    /// `[a, b]` or `{k: v}`, nested, possibly across lines.
    fn parse_flow(&mut self, parent: isize) -> PResult<Value> {
        if self.peek() == Some(b'[') {
            self.parse_flow_seq(parent)
        } else {
            self.parse_flow_map(parent)
        }
    }

    fn parse_flow_seq(&mut self, parent: isize) -> PResult<Value> {
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_flow_ws(open, parent)?;
            if self.peek() == Some(b']') {
                self.pos += 1;
                break;
            }
            items.push(self.parse_flow_entry(open, parent)?);
            self.skip_flow_ws(open, parent)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return self.flow_expected(", or ]"),
            }
        }
        Ok(self.node(ValueKind::Seq(items), open, self.pos))
    }

    fn flow_expected<T>(&self, what: &str) -> PResult<T> {
        let end = self.char_end(self.pos);
        let found = self.src.get(self.pos..end).unwrap_or("");
        let (a, b) = what.split_once(" or ").unwrap_or((what, ""));
        self.fail_help(
            self.pos,
            end,
            format!("expected `{a}` or `{b}`, found `{found}`"),
            "separate entries with `,`; quote values that contain `,`, `[`, `]`, `{`, `}` or `: `",
        )
    }

    /// An item of a flow sequence: a node, or `key: value` (a one-entry mapping).
    fn parse_flow_entry(&mut self, open: usize, parent: isize) -> PResult<Value> {
        let item = self.parse_flow_node(parent)?;
        let mut j = self.pos;
        while is_ws(self.byte(j)) {
            j += 1;
        }
        let pair = self.byte(j) == Some(b':')
            && (self.is_eol(j + 1)
                || is_ws(self.byte(j + 1))
                || is_flow_indicator(self.byte(j + 1)));
        if !pair {
            return Ok(item);
        }
        let key = match &item.kind {
            ValueKind::Seq(_) | ValueKind::Map(_) => {
                return self.fail(j, j + 1, "a flow collection cannot be a key")
            }
            _ => Key {
                name: scalar_text(&item, self.src),
                span: item.span,
            },
        };
        self.pos = j + 1;
        self.skip_flow_ws(open, parent)?;
        let value = if matches!(self.peek(), Some(b',' | b']')) {
            self.node(ValueKind::Null, self.pos, self.pos)
        } else {
            self.parse_flow_node(parent)?
        };
        let (start, end) = (key.span.start as usize, value.span.end as usize);
        let map = Map {
            entries: vec![(key, value)],
        };
        Ok(self.node(ValueKind::Map(map), start, end))
    }

    fn parse_flow_map(&mut self, parent: isize) -> PResult<Value> {
        let open = self.pos;
        self.pos += 1;
        let mut map = Map::default();
        let mut seen = HashMap::new();
        loop {
            self.skip_flow_ws(open, parent)?;
            if self.peek() == Some(b'}') {
                self.pos += 1;
                break;
            }
            let key_start = self.pos;
            let (name, quoted) = match self.peek() {
                Some(b'!') if self.src[key_start..].starts_with("!include") => {
                    self.pos += "!include".len();
                    ("!include".to_string(), false)
                }
                Some(b'[' | b'{') => {
                    return self.fail(
                        key_start,
                        key_start + 1,
                        "a flow collection cannot be a key",
                    )
                }
                _ => {
                    let k = self.parse_flow_node(parent)?;
                    let quoted = matches!(self.byte(key_start), Some(b'"' | b'\''));
                    (scalar_text(&k, self.src), quoted)
                }
            };
            let key = Key {
                name,
                span: self.span(key_start, self.pos),
            };
            self.skip_flow_ws(open, parent)?;
            let colon = self.peek() == Some(b':')
                && (quoted
                    || self.is_eol(self.pos + 1)
                    || is_ws(self.byte(self.pos + 1))
                    || is_flow_indicator(self.byte(self.pos + 1)));
            let value = if colon {
                self.pos += 1;
                self.skip_flow_ws(open, parent)?;
                if matches!(self.peek(), Some(b',' | b'}')) {
                    self.node(ValueKind::Null, self.pos, self.pos)
                } else {
                    self.parse_flow_node(parent)?
                }
            } else {
                self.node(ValueKind::Null, self.pos, self.pos)
            };
            self.check_duplicate(&map.entries, &mut seen, &key)?;
            map.entries.push((key, value));
            self.skip_flow_ws(open, parent)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return self.flow_expected(", or }"),
            }
        }
        Ok(self.node(ValueKind::Map(map), open, self.pos))
    }

    fn parse_flow_node(&mut self, parent: isize) -> PResult<Value> {
        match self.peek() {
            Some(b'[' | b'{') => self.parse_flow(parent),
            Some(b'"' | b'\'') => self.parse_quoted(),
            Some(b'&' | b'*') => self.anchor_error(),
            Some(b'!') => self.tag_error(),
            Some(b'|' | b'>') => self.fail_help(
                self.pos,
                self.pos + 1,
                "block scalars (`|`, `>`) cannot appear inside `[...]` or `{...}`",
                "use a quoted string, or turn the flow collection into block style",
            ),
            _ => self.parse_plain(parent, Ctx::Flow),
        }
    }
}

/// The string a scalar key stands for (`1: x` has the key `"1"`, as Jackson gives it).
fn scalar_text(v: &Value, src: &str) -> String {
    match &v.kind {
        ValueKind::Str(t) => t.raw.clone(),
        _ => src.get(v.span.range()).unwrap_or("").to_string(),
    }
}

/// Folds the line breaks of a quoted scalar: one break becomes a space, `n` blank lines become
/// `n` newlines, and whitespace around breaks is dropped.
fn fold_lines(text: &str) -> String {
    if !text.contains(['\n', '\r']) {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let last = lines.len() - 1;
    let mut out = String::with_capacity(text.len());
    let mut breaks = 0;
    for (i, line) in lines.iter().enumerate() {
        let mut line = *line;
        if i > 0 {
            line = line.trim_start_matches([' ', '\t']);
        }
        if i < last {
            line = line.trim_end_matches([' ', '\t']);
        }
        if i > 0 && i < last && line.is_empty() {
            breaks += 1;
            continue;
        }
        if i > 0 {
            if breaks == 0 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', breaks));
            }
            breaks = 0;
        }
        out.push_str(line);
    }
    out
}

/// The value of a block scalar from its lines (without indentation; `None` = blank).
fn block_text(lines: &[Option<&str>], header: BlockHeader) -> String {
    let content_len = lines.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    let trailing = lines.len() - content_len;
    let mut out = String::new();
    if content_len == 0 {
        if header.chomp == Chomp::Keep {
            out.extend(std::iter::repeat_n('\n', lines.len()));
        }
        return out;
    }
    let content = &lines[..content_len];
    if header.folded {
        let mut breaks = 0;
        let mut prev: Option<bool> = None; // whether the previous text line was more indented
        for line in content {
            let Some(text) = line else {
                breaks += 1;
                continue;
            };
            let more = text.starts_with([' ', '\t']);
            match prev {
                None => out.extend(std::iter::repeat_n('\n', breaks)),
                Some(prev_more) if prev_more || more => {
                    out.extend(std::iter::repeat_n('\n', breaks + 1));
                }
                Some(_) if breaks == 0 => out.push(' '),
                Some(_) => out.extend(std::iter::repeat_n('\n', breaks)),
            }
            out.push_str(text);
            prev = Some(more);
            breaks = 0;
        }
    } else {
        for (i, line) in content.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(line.unwrap_or(""));
        }
    }
    match header.chomp {
        Chomp::Strip => {}
        Chomp::Clip => out.push('\n'),
        Chomp::Keep => out.extend(std::iter::repeat_n('\n', trailing + 1)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dig::value::TemplatePart;

    /// Parses `input` and compares the tree, as compact JSON, with `expect`.
    fn check(input: &str, expect: &str) {
        let value = parse_file(FileId(0), input)
            .unwrap_or_else(|d| panic!("{input:?}: {}", d.message))
            .map_or(serde_json::Value::Null, |v| v.to_json_raw());
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            expect,
            "input {input:?}"
        );
    }

    /// Parses `input`, expecting an error whose span covers `at` and whose message contains
    /// `message`.
    fn check_err(input: &str, at: &str, message: &str) {
        let d = parse_file(FileId(0), input).expect_err(input);
        assert!(
            d.message.contains(message),
            "{input:?}: got {:?}",
            d.message
        );
        assert_eq!(&input[d.span.range()], at, "{input:?}: {}", d.message);
    }

    #[test]
    fn block_mappings_and_sequences() {
        check("a: 1\nb: x\n", r#"{"a":1,"b":"x"}"#);
        check("---\na: 1\n", r#"{"a":1}"#);
        check(
            "# c\n\na:\n  b:\n    c: d\ne: f",
            r#"{"a":{"b":{"c":"d"}},"e":"f"}"#,
        );
        check("a:\n- 1\n- 2\nb: 3", r#"{"a":[1,2],"b":3}"#);
        check(
            "a:\n  - x: 1\n    y: 2\n  - - n\n    - m\n",
            r#"{"a":[{"x":1,"y":2},["n","m"]]}"#,
        );
        check("+z: 1\n+a: 2\n+m: 3\n", r#"{"+z":1,"+a":2,"+m":3}"#);
        check("a:\nb: ~\n", r#"{"a":null,"b":null}"#);
        check("a: 1\r\nb:\r\n  c: 2\r\n", r#"{"a":1,"b":{"c":2}}"#);
        check(
            "!include : x.dig\n!include : y.dig\n",
            r#"{"!include":"y.dig"}"#,
        );
        check("", "null");
        check("# only a comment\n", "null");
        check("a: b # comment\nc: 'd # e'\n", r##"{"a":"b","c":"d # e"}"##);
        check("url: http://x:80/a#b\n", r##"{"url":"http://x:80/a#b"}"##);
        check(
            "\"quoted key\": 1\n'k''': 2\n",
            r#"{"quoted key":1,"k'":2}"#,
        );
    }

    #[test]
    fn plain_scalars_are_typed_and_fold() {
        check(
            "a: 017\nb: 0.5\nc: 1.5\nd: 07:00:00\ne: yes\nf: True\ng: 2016-01-01\n",
            r#"{"a":15,"b":"0.5","c":1.5,"d":"07:00:00","e":"yes","f":true,"g":"2016-01-01"}"#,
        );
        check(
            "a: one\n  two\n\n  three\nb: 1",
            r#"{"a":"one two\nthree","b":1}"#,
        );
        check("sh>: echo ${a}", r#"{"sh>":"echo ${a}"}"#);
    }

    #[test]
    fn quoted_scalars_with_escapes_and_folding() {
        check(
            r#"a: "x\ty\n\"z\" \\ \u00e9 \x41""#,
            r#"{"a":"x\ty\n\"z\" \\ é A"}"#,
        );
        check("a: 'it''s'", r#"{"a":"it's"}"#);
        check("a: \"one\n  two\n\n  three\"", r#"{"a":"one two\nthree"}"#);
        check("a: \"one \\\n  two\"", r#"{"a":"one two"}"#);
        check("a: 'x\n  y'", r#"{"a":"x y"}"#);
        check("a: '*/5 * * * *'", r#"{"a":"*/5 * * * *"}"#);
    }

    #[test]
    fn block_scalars_with_chomping_and_indentation() {
        check("a: |\n  x\n  y\n\nb: 1", r#"{"a":"x\ny\n","b":1}"#);
        check("a: |-\n  x\n  y\n\n", r#"{"a":"x\ny"}"#);
        check("a: |+\n  x\n\n\nb: 1", r#"{"a":"x\n\n\n","b":1}"#);
        check(
            "a: >\n  one\n  two\n\n  three\n",
            r#"{"a":"one two\nthree\n"}"#,
        );
        check(
            "a: >-\n  one\n    more\n  two\n",
            r#"{"a":"one\n  more\ntwo"}"#,
        );
        check("a: |2\n    x\n  y\n", r#"{"a":"  x\ny\n"}"#);
        check("a: |1-\n  x\n", r#"{"a":" x"}"#);
        check(
            "a: | # comment\n  SELECT 1\n  # not a comment\nb: 2",
            r##"{"a":"SELECT 1\n# not a comment\n","b":2}"##,
        );
        check("- |\n  x\n- y", r#"["x\n","y"]"#);
        check("a: |\nb: 1", r#"{"a":"","b":1}"#);
    }

    #[test]
    fn flow_collections_nest_and_span_lines() {
        check(
            "a: [1, b, 'c, d', [x], {k: v}]",
            r#"{"a":[1,"b","c, d",["x"],{"k":"v"}]}"#,
        );
        check(
            "a: [\n  1,\n  2, # two\n  3,\n]\nb: 1",
            r#"{"a":[1,2,3],"b":1}"#,
        );
        check(
            "+w: { td_wait>: { data: \"select 1\" }, engine: \"${e}\" }",
            r#"{"+w":{"td_wait>":{"data":"select 1"},"engine":"${e}"}}"#,
        );
        check("a: {x, y: , \"z\":1}", r#"{"a":{"x":null,"y":null,"z":1}}"#);
        check("a: [k: v, w]", r#"{"a":[{"k":"v"},"w"]}"#);
        check(
            "+b: {!include : basic.dig}",
            r#"{"+b":{"!include":"basic.dig"}}"#,
        );
        check("a: []\nb: {}", r#"{"a":[],"b":{}}"#);
    }

    #[test]
    fn syntax_errors_point_at_the_fault() {
        check_err("a: 1\n  b: 2\n", "b:", "bad indentation");
        check_err("a:\n    b: 1\n  c: 2\n", "c:", "bad indentation");
        check_err("a:\n\tb: 1\n", "\t", "tab character");
        check_err("a: \"x\nb: 1\n", "\"", "unclosed double-quoted");
        check_err("a: 'x\n", "'", "unclosed single-quoted");
        check_err("a: [1, 2\nb: 3\n", "[", "unclosed flow sequence");
        check_err("a: {x: 1\n", "{", "unclosed flow mapping");
        check_err("a: 1\na: 2\n", "a", "duplicate key `a`");
        check_err("a: {k: 1, k: 2}", "k", "duplicate key `k`");
        check_err("a: &x 1\n", "&x", "anchor");
        check_err("a: *x\n", "*x", "alias");
        check_err("a: !!str 1\n", "!!str", "tag");
        check_err("a: !include x.dig\n", "!include", "only as a key");
        check_err("a: b: c\n", ":", "cannot contain `: `");
        check_err("a: \"x\" y\n", "y", "end of the line");
        check_err("a: 1\n- b\n", "-", "sequence item");
        check_err(
            "a: - b\n",
            "-",
            "sequence cannot start on the line of its key",
        );
        check_err("a: 1\nb\n", "b", "expected `key: value`");
        check_err("a: \"\\q\"", "\\q", "unknown escape");
        check_err("a: 1\n---\nb: 2\n", "---", "second YAML document");
        check_err("a: |x\n", "x", "expected");
        check_err("a: [1 2}", "}", "expected `,` or `]`");
    }

    #[test]
    fn expression_spans_are_exact_when_text_is_verbatim() {
        let check_spans = |input: &str, expect: &[&str]| {
            let v = parse_file(FileId(0), input).unwrap().unwrap();
            let map = v.as_map().unwrap();
            let t = map.entries[0].1.as_template().unwrap();
            let spans: Vec<&str> = t
                .parts
                .iter()
                .filter_map(|p| match p {
                    TemplatePart::Expr { span, .. } => Some(&input[span.range()]),
                    TemplatePart::Literal(_) => None,
                })
                .collect();
            assert_eq!(spans, expect, "{input:?}");
        };
        check_spans("a: x ${b} ${c.d}", &["b", "c.d"]);
        check_spans("a: 'x ${b}'", &["b"]);
        check_spans("a: \"x ${b}\"", &["b"]);
        // Escapes or folding move text around: the whole scalar is the span.
        check_spans("a: 'it''s ${b}'", &["'it''s ${b}'"]);
        check_spans("a: \"\\t${b}\"", &["\"\\t${b}\""]);
        check_spans("a: |\n  ${b}\n", &["|\n  ${b}"]);
    }

    #[test]
    fn node_spans_cover_their_text() {
        let input = "k: value\nseq: [1, two]\n";
        let v = parse_file(FileId(0), input).unwrap().unwrap();
        let map = v.as_map().unwrap();
        let texts: Vec<&str> = map
            .entries
            .iter()
            .flat_map(|(k, v)| [&input[k.span.range()], &input[v.span.range()]])
            .collect();
        assert_eq!(texts, ["k", "value", "seq", "[1, two]"]);
    }
}
