//! nom parsers: `.dig` text -> spanned [`Value`] tree (the YAML subset of `grammar/dig.md`).
//!
//! Block structure is indentation-sensitive, so it is parsed by a cursor that walks lines and
//! compares columns (the line-splitting half, like just's INDENT/DEDENT lexer). Tokens inside a
//! line (keys, quoted scalars, block scalar headers) are nom parsers with our own error type.
//! Every function named `parse_*` is one production of `grammar/dig.md`. The first syntax error
//! stops the parse.
//!
//! Every recursive production counts the collections open around it and stops at
//! [`MAX_DEPTH`], so no input can exhaust the stack; aliases are copies bounded by
//! `anchor::MAX_COPIED_NODES`.

use crate::diag::{Diagnostic, FileId, Span};
use crate::dig::anchor::{AliasError, AliasUse, Anchors, MAX_COPIED_NODES};
use crate::dig::scalar::{java_double, read_plain, read_plain_key, KeyType, Plain};
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
    /// A size limit was hit (nesting, copies): the error stands as it is, whatever else
    /// looks wrong around it.
    limit: bool,
}

/// Boxed: errors are rare (the first one stops the parse), and a small `Err` keeps the frames
/// of the recursive productions small.
type PResult<T> = Result<T, Box<SyntaxError>>;

/// The deepest nesting of collections (mappings and sequences, block or flow) a document may
/// have, counted from its root, which is level 1; an included file counts from the level of
/// the mapping it is spliced into. Deeper input is a syntax error instead of a stack overflow;
/// 512 levels parse, lower and convert to JSON within a 2 MiB thread stack in a debug build.
pub const MAX_DEPTH: usize = 512;

/// A parsed file: its root (`None` for an empty document) and the aliases it expanded.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub value: Option<Value>,
    pub aliases: Vec<AliasUse>,
}

/// Parses a whole file. `Ok(None)` is an empty document (only blank lines and comments).
#[cfg(test)]
pub(crate) fn parse_file(file: FileId, src: &str) -> Result<Option<Value>, Diagnostic> {
    parse_file_at(file, src, 0).map(|parsed| parsed.value)
}

/// Parses a whole file whose root sits inside `base_depth` collections (0 for a file of its
/// own, more for an included one).
pub(crate) fn parse_file_at(
    file: FileId,
    src: &str,
    base_depth: usize,
) -> Result<Parsed, Diagnostic> {
    let mut p = Cursor {
        src,
        bytes: src.as_bytes(),
        file,
        pos: 0,
        depth: base_depth,
        base_depth,
        anchors: Anchors::default(),
        flow_dedent: None,
        flow_open: Vec::new(),
    };
    match p.parse_document() {
        Ok(value) => Ok(Parsed {
            value,
            aliases: p.anchors.uses,
        }),
        Err(e) => {
            let d = Diagnostic::error(Span::new(file, e.start, e.end), e.message);
            Err(match e.help {
                Some(h) => d.with_help(h),
                None => d,
            })
        }
    }
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

/// What starts at a block position.
enum BlockStart {
    Nothing,
    Seq(usize),
    Map(usize),
    Value,
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
    /// Collections open around `pos`, plus `base_depth`.
    depth: usize,
    /// The level the document is spliced at (an included file), for error messages.
    base_depth: usize,
    anchors: Anchors,
    /// The first line inside the current flow collection that is not indented past its
    /// block: `(the innermost open bracket then, that line's start)`. SnakeYAML accepts such
    /// lines, so they are read; but when the collection then fails to parse, the likely fault
    /// is a missing `]` or `}` before that line, and the error says so.
    flow_dedent: Option<(usize, usize)>,
    /// The open brackets of the flow collections around `pos`.
    flow_open: Vec<usize>,
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

    /// Lines end at `\n` or at a lone `\r` (in `\r\n` the `\n` comes last).
    fn line_start(&self, i: usize) -> usize {
        let i = i.min(self.bytes.len());
        self.bytes[..i]
            .iter()
            .rposition(|&b| b == b'\n' || b == b'\r')
            .map_or(0, |n| n + 1)
    }

    fn col(&self, i: usize) -> usize {
        i - self.line_start(i)
    }

    fn line_of(&self, i: usize) -> usize {
        let i = i.min(self.bytes.len());
        let text = &self.bytes[..i];
        let lone_cr = text
            .iter()
            .enumerate()
            .filter(|&(j, &b)| b == b'\r' && self.byte(j + 1) != Some(b'\n'))
            .count();
        text.iter().filter(|&&b| b == b'\n').count() + lone_cr + 1
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
        Err(Box::new(SyntaxError {
            start,
            end,
            message: message.into(),
            help: None,
            limit: false,
        }))
    }

    fn fail_help<T>(
        &self,
        start: usize,
        end: usize,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> PResult<T> {
        Err(Box::new(SyntaxError {
            start,
            end,
            message: message.into(),
            help: Some(help.into()),
            limit: false,
        }))
    }

    /// [`Cursor::fail_help`] for a size limit.
    fn fail_limit<T>(
        &self,
        start: usize,
        end: usize,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> PResult<T> {
        self.fail_help(start, end, message, help).map_err(|mut e| {
            e.limit = true;
            e
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
        // The text first: finding the column scans back over the line.
        let rest = self.bytes.get(i..).unwrap_or_default();
        (rest.starts_with(b"---") || rest.starts_with(b"..."))
            && (self.is_eol(i + 3) || is_ws(self.byte(i + 3)))
            && self.col(i) == 0
    }

    /// Whether the content at `i` is `key:` (plain, quoted or `!include`) on this line.
    fn looks_like_key(&self, i: usize) -> bool {
        let rest = &self.src[i..];
        let after = match self.byte(i) {
            Some(b'"') => parse_double_quoted(rest).ok().map(|(r, _)| r),
            Some(b'\'') => parse_single_quoted(rest).ok().map(|(r, _)| r),
            Some(b'!') => rest.strip_prefix("!include"),
            // `&a key: v` anchors the key; `&a` alone, or before a value, anchors a node.
            Some(b'&') => {
                let end = self.name_end(i);
                let mut j = end;
                while is_ws(self.byte(j)) {
                    j += 1;
                }
                return end > i + 1
                    && j > end
                    && !self.is_eol(j)
                    && !matches!(self.byte(j), Some(b'&' | b'*' | b'#'))
                    && self.looks_like_key(j);
            }
            Some(b'*') => Some(&self.src[self.name_end(i)..]).filter(|_| self.name_end(i) > i + 1),
            Some(b'[' | b'{' | b'|' | b'>' | b'#' | b'%' | b'@' | b'`') => None,
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
            self.skip_inline_ws();
            // `--- |` or `--- [a, b]`: the root node starts on the marker's line.
            if !self.is_eol(self.pos) && self.peek() != Some(b'#') {
                let value = self.parse_block_value(-1, false)?;
                return self.parse_document_rest(value);
            }
            self.finish_line()?;
            self.skip_blank_lines()?;
        }
        if self.is_eof() {
            return Ok(None);
        }
        let value = if self.is_doc_end(self.pos) {
            None
        } else {
            self.parse_block_node(-1, false)?
        };
        self.parse_document_rest(value)
    }

    /// After the root node: an optional `...`, then nothing but blank and comment lines.
    fn parse_document_rest(&mut self, value: Option<Value>) -> PResult<Option<Value>> {
        if self.is_doc_end(self.pos) {
            let end = self.pos;
            self.pos += 3;
            self.finish_line()?;
            self.skip_blank_lines()?;
            if !self.is_eof() {
                return self.fail_help(
                    self.pos,
                    self.token_end(self.pos),
                    "a second YAML document is not supported",
                    format!(
                        "the document ended with `...` on line {}; a workflow file holds one document: remove what follows, or the `...`",
                        self.line_of(end)
                    ),
                );
            }
        }
        if !self.is_eof() {
            return self.unexpected_line();
        }
        Ok(value)
    }

    /// `...` at column 0: the end of the document.
    #[inline]
    fn is_doc_end(&self, i: usize) -> bool {
        self.byte(i) == Some(b'.') && self.is_doc_marker(i)
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

    /// One more collection opens at `at`; fails past [`MAX_DEPTH`].
    #[inline]
    fn enter(&mut self, at: usize, what: &str) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            let included = if self.base_depth > 0 {
                format!(
                    " (this file is included at level {} of the including file)",
                    self.base_depth
                )
            } else {
                String::new()
            };
            return self.fail_limit(
                at,
                self.char_end(at),
                format!(
                    "too deeply nested: this {what} would be level {} of nested collections, and the limit is {MAX_DEPTH}",
                    self.depth + 1
                ),
                format!("flatten the value{included}; spade refuses nesting deeper than {MAX_DEPTH} levels so that no file can exhaust its stack"),
            );
        }
        self.depth += 1;
        Ok(())
    }

    #[inline]
    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A block node starting at the current content char, more indented than `parent`
    /// (or at `parent` for a sequence under a key, when `indentless`). `None`: no node here.
    ///
    /// This and the other recursive productions keep their frames small (the checks, the
    /// errors and the non-recursive work are in helpers, errors are boxed): 512 levels must
    /// fit a 2 MiB stack in a debug build, where a level of block mappings costs about 1.9 KB
    /// and one of flow sequences 1.5 KB.
    fn parse_block_node(&mut self, parent: isize, indentless: bool) -> PResult<Option<Value>> {
        let node = match self.block_node_start(parent, indentless) {
            Ok(BlockStart::Seq(n)) => self.parse_block_seq(n),
            Ok(BlockStart::Map(n)) => self.parse_block_map(n),
            Ok(BlockStart::Value) => return self.parse_block_value(parent, indentless),
            Ok(BlockStart::Nothing) => return Ok(None),
            Err(e) => return Err(e),
        };
        match node {
            Ok(node) => Ok(Some(node)),
            Err(e) => Err(e),
        }
    }

    /// What kind of block node starts at `pos`.
    #[inline]
    fn block_node_start(&self, parent: isize, indentless: bool) -> PResult<BlockStart> {
        if self.is_eof() {
            return Ok(BlockStart::Nothing);
        }
        let n = self.col(self.pos);
        let col = isize::try_from(n).unwrap_or(isize::MAX);
        let seq = self.is_seq_entry(self.pos);
        if col < parent || (col == parent && !(indentless && seq)) {
            return Ok(BlockStart::Nothing);
        }
        if seq {
            return Ok(BlockStart::Seq(n));
        }
        if self.is_doc_marker(self.pos) {
            return self.unexpected_line();
        }
        if self.looks_like_key(self.pos) {
            return Ok(BlockStart::Map(n));
        }
        Ok(BlockStart::Value)
    }

    /// The value after `key:` or `- ` (spaces skipped), or a node on a line of its own: on
    /// this line, or below it when the line ends here (also after an anchor: `key: &a` then
    /// the anchored mapping). Consumes the end of the line and the blank lines after the
    /// value. `None`: the value is empty.
    #[inline]
    fn parse_block_value(&mut self, parent: isize, indentless: bool) -> PResult<Option<Value>> {
        if self.is_eol(self.pos) || self.peek() == Some(b'#') {
            self.next_content_line()?;
            return self.parse_block_node(parent, indentless);
        }
        if self.peek() == Some(b'&') {
            return self.parse_anchored_block_value(parent, indentless);
        }
        self.parse_inline_line(parent).map(Some)
    }

    /// The end of this line (a comment at most), then blank lines up to the next content.
    #[inline]
    fn next_content_line(&mut self) -> PResult<()> {
        self.finish_line()?;
        self.skip_blank_lines()
    }

    /// A value on the rest of this line, and the end of the line.
    #[inline]
    fn parse_inline_line(&mut self, parent: isize) -> PResult<Value> {
        let value = self.parse_inline_value(parent)?;
        self.next_content_line()?;
        Ok(value)
    }

    /// `&name` then a block value.
    fn parse_anchored_block_value(
        &mut self,
        parent: isize,
        indentless: bool,
    ) -> PResult<Option<Value>> {
        let anchor = self.open_anchor(Ctx::Block)?;
        self.skip_inline_ws();
        self.no_second_property(anchor)?;
        if self.is_seq_entry(self.pos) {
            return self.fail_help(
                self.pos,
                self.pos + 1,
                "a sequence cannot start on the line of its anchor",
                "move `- ...` to the next line, indented under the key",
            );
        }
        let value = self
            .parse_block_value(parent, indentless)?
            .unwrap_or_else(|| {
                let end = anchor.end as usize;
                self.node(ValueKind::Null, end, end)
            });
        self.close_anchor(anchor, &value)?;
        Ok(Some(value))
    }

    /// `key: value` lines at column `n`.
    fn parse_block_map(&mut self, n: usize) -> PResult<Value> {
        let start = self.pos;
        self.enter(start, "mapping")?;
        let parent = isize::try_from(n).unwrap_or(isize::MAX);
        let mut map = MapBuilder::default();
        let mut end = start;
        loop {
            let (key, key_type, colon_end) = match self.block_map_key() {
                Ok(Some(key)) => key,
                Ok(None) => break,
                Err(e) => return Err(e),
            };
            // `parse_block_value` inlined by hand: a nested block node skips its frame, and
            // the common `key: value` line its call.
            let value = if self.is_eol(self.pos) || self.peek() == Some(b'#') {
                self.next_content_line()?;
                self.parse_block_node(parent, true)
            } else if self.peek() == Some(b'&') {
                self.parse_block_value(parent, true)
            } else {
                self.parse_inline_line(parent).map(Some)
            };
            let value = value?;
            let entry = (key, key_type, colon_end, value);
            match self.block_map_entry(&mut map, &mut end, n, entry) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(e),
            }
        }
        self.leave();
        Ok(self.node(ValueKind::Map(map.finish()), start, end))
    }

    /// The key of the next entry of a block mapping and the end of its `:`; `None` at `...`.
    #[inline]
    fn block_map_key(&mut self) -> PResult<Option<(Key, KeyType, usize)>> {
        if self.is_doc_end(self.pos) {
            return Ok(None);
        }
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
        let (key, key_type) = self.parse_key()?;
        let colon_end = self.pos;
        self.skip_inline_ws();
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
        Ok(Some((key, key_type, colon_end)))
    }

    /// Adds a parsed entry to a block mapping at column `n`; whether the mapping goes on.
    #[inline]
    fn block_map_entry(
        &self,
        map: &mut MapBuilder,
        end: &mut usize,
        n: usize,
        (key, key_type, colon_end, value): (Key, KeyType, usize, Option<Value>),
    ) -> PResult<bool> {
        let value = value.unwrap_or_else(|| self.node(ValueKind::Null, colon_end, colon_end));
        *end = (*end)
            .max(value.span.end as usize)
            .max(key.span.end as usize);
        self.add_entry(map, key, key_type, value)?;
        if self.is_eof() {
            return Ok(false);
        }
        let c = self.col(self.pos);
        if c > n {
            return self.unexpected_line();
        }
        Ok(c == n)
    }

    /// Adds one `key: value` of a mapping: `<<` merges, a key of the same type and name as an
    /// earlier one is a duplicate, and a key of another type with the same name (`1` after
    /// `'1'`) replaces the earlier value in its place, as Jackson does with the JSON Digdag
    /// writes.
    #[inline]
    fn add_entry(
        &self,
        map: &mut MapBuilder,
        key: Key,
        key_type: KeyType,
        value: Value,
    ) -> PResult<()> {
        if key_type == KeyType::Merge {
            if let Some(first) = map.merge_key {
                return self.duplicate(&key, first);
            }
            map.merge_key = Some(key.span.start as usize);
            return self.merge(map, value);
        }
        // `!include` keys may repeat: Digdag gives each a unique name (spec 1.4).
        if key.name == "!include" {
            map.push(key, value, None);
            return Ok(());
        }
        match map.find(&key.name) {
            Some(i) if map.type_at(i) == Some(key_type) => {
                self.duplicate(&key, map.entries[i].0.span.start as usize)
            }
            Some(i) => {
                map.entries[i] = (key, value);
                map.set_type(i, Some(key_type));
                Ok(())
            }
            None => {
                map.push(key, value, Some(key_type));
                Ok(())
            }
        }
    }

    fn duplicate(&self, key: &Key, first: usize) -> PResult<()> {
        let line = self.line_of(first);
        self.fail_help(
            key.span.start as usize,
            key.span.end as usize,
            format!("duplicate key `{}`", key.name),
            format!(
                "`{}` is already defined on line {line}: remove or rename one of them",
                key.name
            ),
        )
    }

    /// `<<: mapping` or `<<: [mapping, ...]` (SnakeYAML's merge): the merged keys go where
    /// `<<` is, unless the mapping already has them; keys written after `<<` replace merged
    /// ones in place; of several merged mappings the first one to have a key wins.
    fn merge(&self, map: &mut MapBuilder, value: Value) -> PResult<()> {
        let sources = match value.kind {
            ValueKind::Map(m) => vec![m],
            ValueKind::Seq(items) => {
                let mut maps = Vec::with_capacity(items.len());
                // The items of an aliased list are in the anchor's text; the fault is here.
                let aliased = self.byte(value.span.start as usize) == Some(b'*');
                for item in items {
                    match item.kind {
                        ValueKind::Map(m) => maps.push(m),
                        other => {
                            let at = if aliased { value.span } else { item.span };
                            let (start, end) = (at.start as usize, at.end as usize);
                            let found = if aliased {
                                format!(
                                    "{} in the list `{}`",
                                    kind_name(&other),
                                    self.src.get(start..end).unwrap_or("")
                                )
                            } else {
                                kind_name(&other).to_string()
                            };
                            return self.fail_help(
                                start,
                                end.max(start + 1),
                                format!("expected a mapping for merging, found {found}"),
                                "every item of a `<<` list must be a mapping, such as an alias `*name` of an anchored mapping",
                            );
                        }
                    }
                }
                maps
            }
            other => {
                let (start, end) = (value.span.start as usize, value.span.end as usize);
                return self.fail_help(
                    start,
                    end.max(start + 1),
                    format!(
                        "expected a mapping or a list of mappings for merging, found {}",
                        kind_name(&other)
                    ),
                    "`<<` merges a mapping into this one: write `<<: *name` for a mapping anchored as `&name`, or `<<: [*a, *b]`; quote the key (`'<<':`) for a plain key named `<<`",
                );
            }
        };
        for source in sources {
            for (k, v) in source.entries {
                if k.name == "!include" || map.find(&k.name).is_none() {
                    map.push(k, v, None);
                }
            }
        }
        Ok(())
    }

    /// A mapping key and its `:`.
    fn parse_key(&mut self) -> PResult<(Key, KeyType)> {
        let start = self.pos;
        let rest = &self.src[start..];
        let (name, key_type, key_end) = match self.peek() {
            Some(b'"' | b'\'') => {
                let v = self.parse_quoted()?;
                let name = v.as_template().map(|t| t.raw.clone()).unwrap_or_default();
                (name, KeyType::Str, self.pos)
            }
            Some(b'!') if rest.starts_with("!include") => {
                self.pos += "!include".len();
                ("!include".to_string(), KeyType::Str, self.pos)
            }
            Some(b'!') => return self.tag_error(),
            Some(b'&') => {
                let anchor = self.open_anchor(Ctx::Block)?;
                self.skip_inline_ws();
                self.no_second_property(anchor)?;
                let key_start = self.pos;
                let node = match self.peek() {
                    Some(b'"' | b'\'') => self.parse_quoted()?,
                    _ => match self.plain_key_end(key_start) {
                        Some(colon) => {
                            let text = self.src[key_start..colon].trim_end_matches([' ', '\t']);
                            self.plain_node(key_start, key_start + text.len())
                        }
                        None => return self.expected_key(key_start),
                    },
                };
                self.close_anchor(anchor, &node)?;
                let (name, key_type) = self.node_key(&node)?;
                let end = node.span.end as usize;
                self.pos = self.pos.max(end);
                (name, key_type, end)
            }
            Some(b'*') => {
                let alias = self.parse_alias(Ctx::Block)?;
                let (name, key_type) = self.node_key(&alias)?;
                (name, key_type, self.pos)
            }
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
                    let text = self.src[start..colon].trim_end_matches([' ', '\t']);
                    let end = start + text.len();
                    let (key_type, name) = read_plain_key(text);
                    if key_type == KeyType::Null {
                        return self.null_key(start, end);
                    }
                    self.pos = colon;
                    (name.into_owned(), key_type, end)
                }
                None => return self.expected_key(start),
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
        Ok((
            Key {
                name,
                span: self.span(start, key_end),
            },
            key_type,
        ))
    }

    fn expected_key<T>(&self, start: usize) -> PResult<T> {
        let end = self.token_end(start);
        let found = self.src.get(start..end).unwrap_or("");
        self.fail_help(
            start,
            end,
            format!("expected `key: value`, found `{found}`"),
            "is a `:` missing? a value that continues on the next line must be indented more than its key",
        )
    }

    fn null_key<T>(&self, start: usize, end: usize) -> PResult<T> {
        let text = self.src.get(start..end).unwrap_or("");
        self.fail_help(
            start,
            end.max(start + 1),
            format!("a null key `{text}` is not allowed"),
            format!("Digdag writes keys as JSON strings and cannot write a null one; quote the key if it is text: `'{text}':`"),
        )
    }

    /// The name and type of a key given as a node: a flow key, an anchored or aliased key.
    fn node_key(&self, node: &Value) -> PResult<(String, KeyType)> {
        let (start, end) = (node.span.start as usize, node.span.end as usize);
        Ok(match &node.kind {
            ValueKind::Null => return self.null_key(start, end),
            ValueKind::Bool(b) => (b.to_string(), KeyType::Bool),
            ValueKind::Int(i) => (i.to_string(), KeyType::Int),
            ValueKind::Float(f) => (java_double(*f), KeyType::Float),
            // Quoted, block and aliased strings are strings; a plain one may still be `<<`
            // or an int too large for a value.
            ValueKind::Str(t) => match self.byte(start) {
                Some(b'"' | b'\'' | b'*' | b'|' | b'>') => (t.raw.clone(), KeyType::Str),
                _ => {
                    let (key_type, name) = read_plain_key(&t.raw);
                    (name.into_owned(), key_type)
                }
            },
            ValueKind::Seq(_) | ValueKind::Map(_) => {
                return self.fail_help(
                    start,
                    end.max(start + 1),
                    "a collection cannot be a key",
                    "write the key as a plain or quoted scalar",
                )
            }
        })
    }

    /// `&name` at `pos`: the anchor is open until [`Cursor::close_anchor`].
    fn open_anchor(&mut self, ctx: Ctx) -> PResult<Span> {
        let start = self.pos;
        let name = self.parse_node_name(ctx)?;
        self.anchors.open(name);
        Ok(self.span(start, self.pos))
    }

    /// Records the value of the innermost open anchor (`anchor` is its `&name`).
    fn close_anchor(&mut self, anchor: Span, value: &Value) -> PResult<()> {
        self.anchors.close(anchor, value).or_else(|copied| {
            let (start, end) = (anchor.start as usize, anchor.end as usize);
            self.fail_limit(
                start,
                end,
                format!("anchors and aliases copy more than {MAX_COPIED_NODES} nodes in this file ({copied} with this anchor)"),
                "anchor smaller values; spade copies an anchored value for each alias and refuses more than that (an alias bomb)",
            )
        })
    }

    /// After an anchor: a node has at most one anchor, and an alias has none.
    fn no_second_property(&self, anchor: Span) -> PResult<()> {
        let what = match self.peek() {
            Some(b'&') => "a node has one anchor: remove one of them",
            Some(b'*') => "an alias cannot have an anchor: anchor the original value instead",
            _ => return Ok(()),
        };
        let end = self.token_end(self.pos);
        self.fail_help(
            anchor.start as usize,
            end,
            format!(
                "`{}` is followed by another anchor or alias",
                self.src.get(anchor.range()).unwrap_or("&")
            ),
            what,
        )
    }

    /// The end of the anchor or alias name after the `&` or `*` at `i`: YAML 1.1's letters,
    /// digits, `-` and `_`.
    fn name_end(&self, i: usize) -> usize {
        let mut j = i + 1;
        while matches!(
            self.byte(j),
            Some(b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_')
        ) {
            j += 1;
        }
        j
    }

    /// `&name` or `*name` at `pos`: the name; `pos` moves past it.
    fn parse_node_name(&mut self, ctx: Ctx) -> PResult<&'a str> {
        let start = self.pos;
        let alias = self.peek() == Some(b'*');
        let end = self.name_end(start);
        let next = self.byte(end);
        let ends = self.is_eol(end)
            || is_ws(next)
            || next == Some(b':')
            || (ctx == Ctx::Flow && is_flow_indicator(next));
        if end == start + 1 || !ends {
            let token = self.src.get(start..self.token_end(start)).unwrap_or("");
            return if alias {
                self.fail_help(
                    start,
                    self.token_end(start),
                    format!("`{token}` is not an alias: `*` starts an alias `*name`"),
                    format!("a value that starts with `*` (like a cron expression) must be quoted: `'{}'`", self.rest_of_value(start)),
                )
            } else {
                self.fail_help(
                    start,
                    self.token_end(start),
                    format!("`{token}` is not an anchor: `&` starts an anchor `&name`"),
                    format!("an anchor name has letters, digits, `-` and `_` only; a value that starts with `&` must be quoted: `'{}'`", self.rest_of_value(start)),
                )
            };
        }
        self.pos = end;
        Ok(&self.src[start + 1..end])
    }

    /// The text from `start` to the end of its line (before a comment), for quoting hints.
    fn rest_of_value(&self, start: usize) -> &'a str {
        let mut end = start;
        while !self.is_eol(end) {
            if self.byte(end) == Some(b'#') && end > start && is_ws(self.byte(end - 1)) {
                break;
            }
            end += 1;
        }
        self.src.get(start..end).unwrap_or("").trim_end()
    }

    /// `*name`: a copy of the value anchored as `name`.
    fn parse_alias(&mut self, ctx: Ctx) -> PResult<Value> {
        let start = self.pos;
        let name = self.parse_node_name(ctx)?;
        let span = self.span(start, self.pos);
        self.anchors
            .expand(name, span, self.depth)
            .or_else(|e| self.alias_error(name, start, e))
    }

    fn alias_error<T>(&self, name: &str, start: usize, e: AliasError) -> PResult<T> {
        let end = start + 1 + name.len();
        match e {
            AliasError::Unknown => {
                let help = match crate::dig::suggest::did_you_mean(name, self.anchors.names()) {
                    Some(near) => format!("did you mean `*{near}`? an alias repeats a value anchored earlier in the same file"),
                    None => format!("an alias repeats a value anchored earlier in the same file (`key: &{name} value`), and anchors do not reach across `!include`; a text value that starts with `*` must be quoted: `'{}'`", self.rest_of_value(start)),
                };
                self.fail_help(
                    start,
                    end,
                    format!("unknown alias `*{name}`: no anchor `&{name}` before it"),
                    help,
                )
            }
            AliasError::Recursive => self.fail_help(
                start,
                end,
                format!("the alias `*{name}` is inside the value anchored as `&{name}`"),
                "a value cannot contain itself: it would have no end in JSON",
            ),
            AliasError::TooDeep(level) => self.fail_limit(
                start,
                end,
                format!("too deeply nested: the value of `*{name}` would reach level {level} of nested collections here, and the limit is {MAX_DEPTH}"),
                format!("flatten the value; spade refuses nesting deeper than {MAX_DEPTH} levels so that no file can exhaust its stack"),
            ),
            AliasError::TooMany(copied) => self.fail_limit(
                start,
                end,
                format!("anchors and aliases copy more than {MAX_COPIED_NODES} nodes in this file ({copied} with this alias)"),
                "this looks like an alias bomb (aliases of aliases that multiply); spade copies an anchored value for each alias and refuses more than that",
            ),
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
        self.enter(start, "sequence")?;
        let mut end = start + 1;
        let mut items = Vec::new();
        let parent = isize::try_from(n).unwrap_or(isize::MAX);
        loop {
            let dash = self.pos;
            let item = match self.block_seq_item_start() {
                BlockStart::Seq(m) => self.parse_block_seq(m),
                BlockStart::Map(m) => self.parse_block_map(m),
                BlockStart::Value | BlockStart::Nothing => {
                    match self.parse_block_value(parent, false) {
                        Ok(Some(v)) => Ok(v),
                        Ok(None) => Ok(self.node(ValueKind::Null, dash + 1, dash + 1)),
                        Err(e) => Err(e),
                    }
                }
            };
            let item = item?;
            end = end.max(item.span.end as usize);
            items.push(item);
            match self.block_seq_goes_on(n) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(e),
            }
        }
        self.leave();
        Ok(self.node(ValueKind::Seq(items), start, end))
    }

    /// After the `-` at `pos`: what the item is (`- - x`, `- k: v`, or a value).
    #[inline]
    fn block_seq_item_start(&mut self) -> BlockStart {
        self.pos += 1;
        self.skip_inline_ws();
        if self.is_eol(self.pos) || self.peek() == Some(b'#') {
            BlockStart::Value
        } else if self.is_seq_entry(self.pos) {
            BlockStart::Seq(self.col(self.pos))
        } else if self.looks_like_key(self.pos) {
            BlockStart::Map(self.col(self.pos))
        } else {
            BlockStart::Value
        }
    }

    /// Whether a block sequence at column `n` has another item at `pos`.
    #[inline]
    fn block_seq_goes_on(&self, n: usize) -> PResult<bool> {
        if self.is_eof() {
            return Ok(false);
        }
        let c = self.col(self.pos);
        if c == n && self.is_seq_entry(self.pos) {
            return Ok(true);
        }
        if c <= n {
            return Ok(false);
        }
        self.unexpected_line()
    }

    /// A node that starts on the current line after a key or `- `.
    fn parse_inline_value(&mut self, parent: isize) -> PResult<Value> {
        match self.peek() {
            Some(b'*') => self.parse_alias(Ctx::Block),
            Some(b'!') => self.tag_error(),
            Some(b'|' | b'>') => self.parse_block_scalar(parent),
            Some(b'[' | b'{') => self.parse_flow(parent),
            Some(b'"' | b'\'') => self.parse_quoted(),
            Some(b @ (b'%' | b'@' | b'`' | b',' | b']' | b'}' | b'&')) => self.fail_help(
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

    /// An unquoted scalar. It may continue on the next lines: in block context on lines
    /// indented past `parent`, in flow context on any line (as SnakeYAML reads it) until a
    /// flow indicator, a `: ` or a comment.
    fn parse_plain(&mut self, parent: isize, ctx: Ctx) -> PResult<Value> {
        let start = self.pos;
        let mut end = self.scan_plain_line(start, ctx)?;
        if end == start {
            return self.fail(start, self.char_end(start), "expected a value");
        }
        let mut folded: Option<String> = None;
        loop {
            let next = match ctx {
                Ctx::Block => self.plain_continuation(end, parent),
                Ctx::Flow => self.flow_plain_continuation(end),
            };
            let Some((content, breaks)) = next else {
                break;
            };
            if ctx == Ctx::Block && self.looks_like_key(content) {
                self.pos = content;
                return self.fail_help(
                    content,
                    self.token_end(content),
                    "bad indentation: this key is indented deeper than the keys above it",
                    "indent the keys of one mapping by the same number of spaces; to nest a mapping, leave the parent key's value empty",
                );
            }
            if ctx == Ctx::Flow {
                let line = self.line_start(content);
                let col = isize::try_from(content - line).unwrap_or(isize::MAX);
                if col <= parent {
                    self.note_flow_dedent(line);
                }
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
        self.pos = end;
        Ok(match folded {
            None => self.plain_node(start, end),
            Some(text) => {
                let span = self.span(start, end);
                Value {
                    kind: ValueKind::Str(template::split(&text, span)),
                    span,
                }
            }
        })
    }

    /// The typed node of the one-line plain scalar `start..end`.
    #[inline]
    fn plain_node(&self, start: usize, end: usize) -> Value {
        let text = &self.src[start..end];
        let kind = match read_plain(text) {
            Plain::Null => ValueKind::Null,
            Plain::Bool(b) => ValueKind::Bool(b),
            Plain::Int(i) => ValueKind::Int(i),
            Plain::Float(f) => ValueKind::Float(f),
            Plain::Str => ValueKind::Str(template::split_exact(text, self.file, start)),
        };
        self.node(kind, start, end)
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
            if self.byte(k) == Some(b'#')
                || self.byte(k) == Some(b'\t')
                || col <= parent
                || self.is_doc_marker(k)
            {
                return None;
            }
            return Some((k, breaks));
        }
    }

    /// [`Cursor::plain_continuation`] inside `[...]`/`{...}`, where columns do not matter.
    #[inline]
    fn flow_plain_continuation(&self, end: usize) -> Option<(usize, usize)> {
        let mut k = end;
        while is_ws(self.byte(k)) {
            k += 1;
        }
        if !self.is_eol(k) || self.byte(k).is_none() {
            return None;
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
            while is_ws(self.byte(k)) {
                k += 1;
            }
            let b = self.byte(k);
            b?;
            if self.is_eol(k) {
                breaks += 1;
                continue;
            }
            if b == Some(b'#')
                || is_flow_indicator(b)
                || self.is_flow_colon(k)
                || self.is_doc_marker(line)
            {
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
            // A `\` before a line break joins the lines with nothing between them; empty
            // lines after it still give one line break each.
            if e == '\r' || e == '\n' {
                out.push_str(&fold_lines(&run));
                run.clear();
                let mut at_break = e;
                loop {
                    if at_break == '\r' && chars.peek().map(|&(_, c)| c) == Some('\n') {
                        chars.next();
                    }
                    while matches!(chars.peek(), Some(&(_, ' ' | '\t'))) {
                        chars.next();
                    }
                    match chars.peek() {
                        Some(&(_, b @ ('\r' | '\n'))) => {
                            chars.next();
                            out.push('\n');
                            at_break = b;
                        }
                        _ => break,
                    }
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
            let mut code = u32::from_str_radix(&hex, 16).ok();
            // `\ud83d\ude00`: a UTF-16 surrogate pair (as JSON writes astral characters) is
            // one character, as Java strings and Jackson read it.
            if let Some(high @ 0xD800..=0xDBFF) = code.filter(|_| e == 'u') {
                let mut ahead = chars.clone();
                let escape: String = (0..6)
                    .filter_map(|_| ahead.next().map(|(_, c)| c))
                    .collect();
                let low = escape
                    .strip_prefix("\\u")
                    .filter(|h| h.len() == 4)
                    .and_then(|h| u32::from_str_radix(h, 16).ok());
                if let Some(low @ 0xDC00..=0xDFFF) = low {
                    chars = ahead;
                    code = Some(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00));
                }
            }
            let decoded = code.and_then(char::from_u32);
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
            let mut line_break = false;
            if self.byte(k) == Some(b'\r') {
                k += 1;
                line_break = true;
            }
            if self.byte(k) == Some(b'\n') {
                k += 1;
                line_break = true;
            }
            // The text ends with the last line's break: no line follows it.
            if !line_break || k >= self.bytes.len() || self.is_doc_marker(k) {
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
        let final_break = consumed < self.bytes.len();
        let text = block_text(&texts, header, final_break);
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

    /// Whitespace, line breaks and comments inside `[...]`/`{...}`. As in SnakeYAML, lines
    /// inside a flow collection may start at any column; the first one that is not indented
    /// past the enclosing block is remembered for the error if the collection never closes.
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
                    if self.is_doc_marker(line) {
                        return self.unclosed(open);
                    }
                    let col = isize::try_from(c - line).unwrap_or(isize::MAX);
                    let closing = matches!(self.byte(c), Some(b']' | b'}'));
                    if !self.is_eol(c) && self.byte(c) != Some(b'#') && col <= parent && !closing {
                        self.note_flow_dedent(line);
                    }
                }
                None => return self.unclosed(open),
                Some(_) => return Ok(()),
            }
        }
    }

    fn note_flow_dedent(&mut self, line: usize) {
        if self.flow_dedent.is_none() {
            self.flow_dedent = Some((self.flow_open.last().copied().unwrap_or(line), line));
        }
    }

    fn unclosed<T>(&self, open: usize) -> PResult<T> {
        let close = self.closing_bracket(open);
        self.fail_help(
            open,
            open + 1,
            self.unclosed_message(open),
            format!("add `{close}` after the last entry; everything after this `{}` up to the end of the file was read as part of it", &self.src[open..open + 1]),
        )
    }

    /// A flow collection that failed after a line at or left of its key's column.
    fn unclosed_before<T>(&self, open: usize, line: usize) -> PResult<T> {
        let close = self.closing_bracket(open);
        self.fail_help(
            open,
            open + 1,
            self.unclosed_message(open),
            format!(
                "add `{close}` after the last entry; line {} is not indented past the key, so the collection probably ends before it",
                self.line_of(line)
            ),
        )
    }

    fn closing_bracket(&self, open: usize) -> &'static str {
        if self.byte(open) == Some(b'[') {
            "]"
        } else {
            "}"
        }
    }

    fn unclosed_message(&self, open: usize) -> String {
        let (what, close) = if self.byte(open) == Some(b'[') {
            ("sequence", "]")
        } else {
            ("mapping", "}")
        };
        format!(
            "unclosed flow {what}: this `{}` has no matching `{close}`",
            &self.src[open..open + 1]
        )
    }

    /// `[a, b]` or `{k: v}` in block context, nested, possibly across lines.
    fn parse_flow(&mut self, parent: isize) -> PResult<Value> {
        let result = self.parse_flow_collection(parent);
        match (result, self.flow_dedent.take()) {
            (Err(e), Some((open, line))) if !e.limit => self.unclosed_before(open, line),
            (result, _) => result,
        }
    }

    /// A flow collection at `pos`.
    fn parse_flow_collection(&mut self, parent: isize) -> PResult<Value> {
        let open = self.pos;
        let seq = self.peek() == Some(b'[');
        self.enter(open, if seq { "`[`" } else { "`{`" })?;
        self.flow_open.push(open);
        let result = if seq {
            self.parse_flow_seq(parent)
        } else {
            self.parse_flow_map(parent)
        };
        self.flow_open.pop();
        self.leave();
        result
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
            match self.parse_flow_entry(open, parent) {
                Ok(item) => items.push(item),
                Err(e) => return Err(e),
            }
            if !self.flow_separator(open, parent, b']')? {
                break;
            }
        }
        Ok(self.node(ValueKind::Seq(items), open, self.pos))
    }

    /// After an entry of the flow collection opened at `open`: `,` (true) or the `close`
    /// bracket (false), both consumed.
    #[inline]
    fn flow_separator(&mut self, open: usize, parent: isize, close: u8) -> PResult<bool> {
        self.skip_flow_ws(open, parent)?;
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ if close == b']' => self.flow_expected(", or ]"),
            _ => self.flow_expected(", or }"),
        }
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

    /// Whether a `:` at `j` separates a flow key from its value.
    #[inline]
    fn is_flow_colon(&self, j: usize) -> bool {
        self.byte(j) == Some(b':')
            && (self.is_eol(j + 1)
                || is_ws(self.byte(j + 1))
                || is_flow_indicator(self.byte(j + 1)))
    }

    /// An implicit key ends on the line it starts on (SnakeYAML: "could not find expected ':'").
    fn single_line_key(&self, key: &Value, colon: usize) -> PResult<()> {
        let text = self.src.get(key.span.range()).unwrap_or("");
        if text.contains(['\n', '\r']) {
            return self.fail_help(
                colon,
                colon + 1,
                "a key must be on one line: the text before this `:` starts on an earlier line",
                "put the key and its `:` on one line; if the text before it is a value, add the missing `,`",
            );
        }
        Ok(())
    }

    /// An item of a flow sequence: a node, or `key: value` (a one-entry mapping).
    fn parse_flow_entry(&mut self, open: usize, parent: isize) -> PResult<Value> {
        let item = self.parse_flow_node(open, parent)?;
        match self.flow_colon_after(self.pos) {
            Some(colon) => self.parse_flow_pair(open, parent, item, colon),
            None => Ok(item),
        }
    }

    /// The `:` after a flow node ending at `end`, when the node is a key.
    #[inline]
    fn flow_colon_after(&self, end: usize) -> Option<usize> {
        let mut j = end;
        while is_ws(self.byte(j)) {
            j += 1;
        }
        self.is_flow_colon(j).then_some(j)
    }

    /// `key: value` as an item of a flow sequence, the `:` at `colon`.
    fn parse_flow_pair(
        &mut self,
        open: usize,
        parent: isize,
        item: Value,
        colon: usize,
    ) -> PResult<Value> {
        let (key, key_type) = self.flow_pair_key(item, colon)?;
        self.enter(key.span.start as usize, "mapping")?;
        self.pos = colon + 1;
        self.skip_flow_ws(open, parent)?;
        let value = if matches!(self.peek(), Some(b',' | b']')) {
            self.node(ValueKind::Null, self.pos, self.pos)
        } else {
            self.parse_flow_node(open, parent)?
        };
        let (start, end) = (key.span.start as usize, value.span.end as usize);
        let mut map = MapBuilder::default();
        self.add_entry(&mut map, key, key_type, value)?;
        self.leave();
        Ok(self.node(ValueKind::Map(map.finish()), start, end))
    }

    fn flow_pair_key(&self, item: Value, colon: usize) -> PResult<(Key, KeyType)> {
        self.single_line_key(&item, colon)?;
        let (name, key_type) = match &item.kind {
            ValueKind::Seq(_) | ValueKind::Map(_) => {
                return self.fail(colon, colon + 1, "a flow collection cannot be a key")
            }
            _ => self.node_key(&item)?,
        };
        Ok((
            Key {
                name,
                span: item.span,
            },
            key_type,
        ))
    }

    fn parse_flow_map(&mut self, parent: isize) -> PResult<Value> {
        let open = self.pos;
        self.pos += 1;
        let mut map = MapBuilder::default();
        loop {
            self.skip_flow_ws(open, parent)?;
            if self.peek() == Some(b'}') {
                self.pos += 1;
                break;
            }
            let (key, key_type, has_value) = self.flow_map_key(open, parent)?;
            let value = if has_value && !matches!(self.peek(), Some(b',' | b'}')) {
                self.parse_flow_node(open, parent)?
            } else {
                self.node(ValueKind::Null, self.pos, self.pos)
            };
            self.add_entry(&mut map, key, key_type, value)?;
            if !self.flow_separator(open, parent, b'}')? {
                break;
            }
        }
        Ok(self.node(ValueKind::Map(map.finish()), open, self.pos))
    }

    /// The key of a flow mapping entry and, when a `:` follows it, the space after that.
    /// The flag says whether there was a `:` (`{a, b: 1}`: `a` has none and is null).
    fn flow_map_key(&mut self, open: usize, parent: isize) -> PResult<(Key, KeyType, bool)> {
        let key_start = self.pos;
        let (name, key_type, quoted) = match self.peek() {
            Some(b'!') if self.src[key_start..].starts_with("!include") => {
                self.pos += "!include".len();
                ("!include".to_string(), KeyType::Str, false)
            }
            Some(b'[' | b'{') => {
                return self.fail(
                    key_start,
                    key_start + 1,
                    "a flow collection cannot be a key",
                )
            }
            _ => {
                let k = self.parse_flow_node(open, parent)?;
                if let Some(colon) = self.flow_colon_after(self.pos) {
                    self.single_line_key(&k, colon)?;
                }
                let quoted = matches!(self.byte(k.span.start as usize), Some(b'"' | b'\''));
                let (name, key_type) = self.node_key(&k)?;
                (name, key_type, quoted)
            }
        };
        let key = Key {
            name,
            span: self.span(key_start, self.pos),
        };
        self.skip_flow_ws(open, parent)?;
        let colon = self.peek() == Some(b':') && (quoted || self.is_flow_colon(self.pos));
        if colon {
            self.pos += 1;
            self.skip_flow_ws(open, parent)?;
        }
        Ok((key, key_type, colon))
    }

    /// A node inside the flow collection opened at `open`.
    fn parse_flow_node(&mut self, open: usize, parent: isize) -> PResult<Value> {
        match self.peek() {
            Some(b'[' | b'{') => self.parse_flow_collection(parent),
            Some(b'"' | b'\'') => self.parse_quoted(),
            Some(b'*') => self.parse_alias(Ctx::Flow),
            Some(b'&') => self.parse_anchored_flow_node(open, parent),
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

    /// `&name` then a flow node (or nothing: `[&a , b]` anchors a null).
    fn parse_anchored_flow_node(&mut self, open: usize, parent: isize) -> PResult<Value> {
        let anchor = self.open_anchor(Ctx::Flow)?;
        self.skip_flow_ws(open, parent)?;
        self.no_second_property(anchor)?;
        let value =
            if matches!(self.peek(), Some(b',' | b']' | b'}')) || self.is_flow_colon(self.pos) {
                self.node(ValueKind::Null, anchor.end as usize, anchor.end as usize)
            } else {
                self.parse_flow_node(open, parent)?
            };
        self.close_anchor(anchor, &value)?;
        Ok(value)
    }
}

/// The entries of one mapping as they are added (see [`Cursor::add_entry`]).
#[derive(Default)]
struct MapBuilder {
    entries: Vec<(Key, Value)>,
    /// The type of the own key that set each entry; `None` for merged entries and `!include`.
    /// Empty while every entry is an own string key (nearly every mapping), so those cost
    /// no allocation.
    types: Vec<Option<KeyType>>,
    /// Name -> entry, built once the mapping is too big to scan (nearly all are small), so a
    /// long file stays linear.
    index: Option<HashMap<String, usize>>,
    /// Where the mapping's `<<` key is.
    merge_key: Option<usize>,
}

impl MapBuilder {
    const SCAN_LIMIT: usize = 16;

    /// The entry named `name` (never an `!include` one).
    #[inline]
    fn find(&mut self, name: &str) -> Option<usize> {
        if self.index.is_none() && self.entries.len() >= Self::SCAN_LIMIT {
            let mut index = HashMap::with_capacity(self.entries.len() * 2);
            for (i, (k, _)) in self.entries.iter().enumerate() {
                if k.name != "!include" {
                    index.insert(k.name.clone(), i);
                }
            }
            self.index = Some(index);
        }
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self
                .entries
                .iter()
                .position(|(k, _)| k.name == name && k.name != "!include"),
        }
    }

    #[inline]
    fn push(&mut self, key: Key, value: Value, key_type: Option<KeyType>) {
        if let Some(index) = &mut self.index {
            if key.name != "!include" {
                index.insert(key.name.clone(), self.entries.len());
            }
        }
        self.entries.push((key, value));
        if !self.types.is_empty() || key_type != Some(KeyType::Str) {
            self.set_type(self.entries.len() - 1, key_type);
        }
    }

    #[inline]
    fn type_at(&self, i: usize) -> Option<KeyType> {
        match self.types.get(i) {
            Some(t) => *t,
            None => Some(KeyType::Str),
        }
    }

    fn set_type(&mut self, i: usize, key_type: Option<KeyType>) {
        if self.types.len() < self.entries.len() {
            self.types.resize(self.entries.len(), Some(KeyType::Str));
        }
        self.types[i] = key_type;
    }

    fn finish(self) -> Map {
        Map {
            entries: self.entries,
        }
    }
}

/// How a node is named in messages about merging (SnakeYAML's scalar, sequence, mapping).
fn kind_name(kind: &ValueKind) -> &'static str {
    match kind {
        ValueKind::Null => "an empty value",
        ValueKind::Bool(_) | ValueKind::Int(_) | ValueKind::Float(_) | ValueKind::Str(_) => {
            "a scalar"
        }
        ValueKind::Seq(_) => "a sequence",
        ValueKind::Map(_) => "a mapping",
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
/// `final_break`: whether the last line ends with a line break (not so at the end of a file
/// without one), which clipping and keeping count.
fn block_text(lines: &[Option<&str>], header: BlockHeader, final_break: bool) -> String {
    let content_len = lines.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    let trailing = lines.len() - content_len;
    // Line breaks after the last content line: its own and those of the blank lines after it.
    let breaks_after =
        (usize::from(content_len > 0) + trailing).saturating_sub(usize::from(!final_break));
    let mut out = String::new();
    if content_len == 0 {
        if header.chomp == Chomp::Keep {
            out.extend(std::iter::repeat_n('\n', breaks_after));
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
        Chomp::Clip if breaks_after > 0 => out.push('\n'),
        Chomp::Clip => {}
        Chomp::Keep => out.extend(std::iter::repeat_n('\n', breaks_after)),
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
        check_err("a: *x\n", "*x", "unknown alias `*x`");
        check_err("a: */5 * * * *\n", "*/5", "is not an alias");
        check_err("a: & x\n", "&", "is not an anchor");
        check_err("a: &x &y 1\n", "&x &y", "followed by another anchor");
        check_err("a: &x [1, *x]\n", "*x", "inside the value anchored as `&x`");
        check_err(
            "a: {<<: 1}",
            "1",
            "expected a mapping or a list of mappings for merging, found a scalar",
        );
        check_err(
            "a: {<<: [{b: 1}, 2]}",
            "2",
            "expected a mapping for merging, found a scalar",
        );
        check_err("a: {<<: {b: 1}, <<: {c: 1}}", "<<", "duplicate key `<<`");
        check_err("a: {True: 1, true: 2}", "true", "duplicate key `true`");
        check_err("a: {0x1F: 1, 31: 2}", "31", "duplicate key `31`");
        check_err("a: {&k x: 1, *k : 2}", "*k", "duplicate key `x`");
        check_err("~: 1\n", "~", "null key `~`");
        check_err("a: {null: 1}", "null", "null key");
        check_err("a: {x\n  y: 1}", ":", "a key must be on one line");
        check_err("a: 1\n...\nb: 2\n", "b:", "second YAML document");
        check_err("a: \"\\ud83d\"", "\\ud83d", "bad escape");
        check_err("a: [1,\n---\n]", "[", "unclosed flow sequence");
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
    fn anchors_and_aliases_copy_values() {
        check("a: &x [1, 2]\nb: *x\n", r#"{"a":[1,2],"b":[1,2]}"#);
        check("a: &x\n  k: v\nb: *x\n", r#"{"a":{"k":"v"},"b":{"k":"v"}}"#);
        check("a: &x\n- 1\nb: *x\n", r#"{"a":[1],"b":[1]}"#);
        check("a: &x |\n  text\nb: *x\n", r#"{"a":"text\n","b":"text\n"}"#);
        check(
            "a:\n  &x\n  k: v\nb: *x\n",
            r#"{"a":{"k":"v"},"b":{"k":"v"}}"#,
        );
        check("&x\nk: v\n", r#"{"k":"v"}"#);
        // Before an implicit key the anchor names the key, as in SnakeYAML and PyYAML.
        check("- &a k: v\n- *a\n", r#"[{"k":"v"},"k"]"#);
        check("&a k: v\nb: *a\n", r#"{"k":"v","b":"k"}"#);
        check("a: [&x 1, *x, &y , *y]", r#"{"a":[1,1,null,null]}"#);
        check("{&x k: 1, z: *x}", r#"{"k":1,"z":"k"}"#);
        check("a: &a1-_x v\nb: *a1-_x\n", r#"{"a":"v","b":"v"}"#);
        // SnakeYAML 1.23 lets a later anchor replace an earlier one of the same name.
        check("a: &x 1\nb: &x 2\nc: *x\n", r#"{"a":1,"b":2,"c":2}"#);
        check("- &x\n- *x\n", "[null,null]");
    }

    #[test]
    fn merge_keys_follow_snakeyaml() {
        check(
            "b: {<<: [{a: 1}, {a: 2, b: 3}], c: 4}",
            r#"{"b":{"a":1,"b":3,"c":4}}"#,
        );
        // Merged keys go where `<<` is; later own keys replace them in place.
        check("b: {c: 4, <<: {a: 2}}", r#"{"b":{"c":4,"a":2}}"#);
        check(
            "d: &d {a: 1, b: 2}\ne:\n  b: 3\n  <<: *d\n  c: 4\n",
            r#"{"d":{"a":1,"b":2},"e":{"b":3,"a":1,"c":4}}"#,
        );
        check(
            "d: &d {a: 1}\ne:\n  <<: *d\n  a: 2\n",
            r#"{"d":{"a":1},"e":{"a":2}}"#,
        );
        check("a: [<<: {x: 1}]", r#"{"a":[{"x":1}]}"#);
        check("'<<': 1\n", r#"{"<<":1}"#);
    }

    #[test]
    fn plain_keys_are_typed_like_digdag() {
        check("{0x1F: a, True: b}", r#"{"31":"a","true":"b"}"#);
        // Different types, one name: Jackson keeps the later value in the first place.
        check("{1: a, '1': b, c: d}", r#"{"1":"b","c":"d"}"#);
        check(
            "1.5: a\n1e3: b\n.inf: c\n",
            r#"{"1.5":"a","1000.0":"b","Infinity":"c"}"#,
        );
        check("a: [017: x]", r#"{"a":[{"15":"x"}]}"#);
    }

    #[test]
    fn flow_collections_read_as_snakeyaml_reads_them() {
        check("v: [a long\n    item]", r#"{"v":["a long item"]}"#);
        check("v: [a\n\n  b, c]", r#"{"v":["a\nb","c"]}"#);
        check("v: [a\n - b]", r#"{"v":["a - b"]}"#);
        check("k: [a,\nb]\n", r#"{"k":["a","b"]}"#);
        check("+t:\n  echo>: [a,\n  b]\n", r#"{"+t":{"echo>":["a","b"]}}"#);
        check("v: {a: b,\nc: d}", r#"{"v":{"a":"b","c":"d"}}"#);
        check_err(
            "+a:\n  k: [1, 2\n  b: 3\n  c: 4\n",
            "[",
            "unclosed flow sequence",
        );
    }

    #[test]
    fn block_scalars_end_at_the_end_of_the_file() {
        check("a: |+\n  last\n", r#"{"a":"last\n"}"#);
        check("a: |+\n  last\n\n", r#"{"a":"last\n\n"}"#);
        check("a: |+\n  last\n  ", r#"{"a":"last\n"}"#);
        check("a: |\n  last", r#"{"a":"last"}"#);
        check("a: |+\n  last", r#"{"a":"last"}"#);
        check("a: >\n  last", r#"{"a":"last"}"#);
        check("a: |+\n\n", r#"{"a":"\n"}"#);
        check("a: |+\n", r#"{"a":""}"#);
        check("a: |", r#"{"a":""}"#);
        check("--- |\n  text\n...\n", r#""text\n""#);
    }

    #[test]
    fn line_ends_escapes_and_the_document_end() {
        check("a: \"a \\\n\n  b\"", r#"{"a":"a \nb"}"#);
        check("a: \"a \\\n\n\n  b\"", r#"{"a":"a \n\nb"}"#);
        check("a: \"x\\\r\n\r\n  y\"", r#"{"a":"x\ny"}"#);
        check("a: \"\\ud83d\\ude00\"", r#"{"a":"😀"}"#);
        check("a: 1\n...\n", r#"{"a":1}"#);
        check("a: 1\n... # end\n# c\n\n", r#"{"a":1}"#);
        check(
            "a: 1\rb:\r  c: |\r    x\r    y\rd: 0_\r",
            r#"{"a":1,"b":{"c":"x\ny\n"},"d":0}"#,
        );
    }

    /// `n` levels of `[`, each level a new collection inside the root mapping.
    fn nested_flow(n: usize) -> String {
        format!("v: {}{}\n", "[".repeat(n), "]".repeat(n))
    }

    /// `n` levels of block mappings (`a:` indented one more space each time).
    fn nested_block(n: usize) -> String {
        (0..n)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect::<String>()
    }

    /// Runs `f` on a thread with the 2 MiB stack of a test thread or a tokio worker.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn nesting_stops_at_max_depth_with_a_located_error() {
        on_small_stack(|| {
            // The root mapping is level 1, so 511 `[` reach exactly the limit.
            let deepest = nested_flow(MAX_DEPTH - 1);
            let value = parse_file(FileId(0), &deepest).unwrap().unwrap();
            let json = value.to_json_raw();
            assert!(serde_json::to_string(&json)
                .unwrap()
                .starts_with("{\"v\":[[["));
            let too_deep = nested_flow(MAX_DEPTH);
            let d = parse_file(FileId(0), &too_deep).unwrap_err();
            assert_eq!(d.span.start as usize, 3 + MAX_DEPTH - 1, "{}", d.message);
            assert!(d.message.contains("level 513"), "{}", d.message);
            // About 12,500 levels in 25 KB: an error, not a stack overflow.
            assert!(parse_file(FileId(0), &nested_flow(12_500)).is_err());
            assert!(parse_file(FileId(0), &format!("v: {}", "{a: ".repeat(12_500))).is_err());
            assert!(parse_file(FileId(0), &nested_block(MAX_DEPTH)).is_ok());
            let d = parse_file(FileId(0), &nested_block(MAX_DEPTH + 1)).unwrap_err();
            assert!(
                d.message.contains("this mapping would be level 513"),
                "{}",
                d.message
            );
            assert!(parse_file(FileId(0), &nested_block(5_000)).is_err());
            assert!(parse_file(FileId(0), &"- ".repeat(12_500)).is_err());
            assert!(parse_file(FileId(0), &format!("v: [{}x]", "k: ".repeat(12_500))).is_err());
        });
    }

    #[test]
    fn included_and_aliased_values_count_their_depth_where_they_land() {
        on_small_stack(|| {
            let deep = nested_flow(MAX_DEPTH - 1);
            assert!(parse_file_at(FileId(0), &deep, 0).is_ok());
            let d = parse_file_at(FileId(0), &deep, 1).unwrap_err();
            assert!(d.message.contains("level 513"), "{}", d.message);
            assert!(d.help.unwrap().contains("included at level 1"));
            // An anchored value 300 levels deep copied 300 levels down.
            let half = 300;
            let text = format!(
                "a: &x {}{}\nb: {}*x{}\n",
                "[".repeat(half),
                "]".repeat(half),
                "[".repeat(half),
                "]".repeat(half)
            );
            let d = parse_file(FileId(0), &text).unwrap_err();
            assert!(
                d.message
                    .contains("the value of `*x` would reach level 601"),
                "{}",
                d.message
            );
        });
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        let mut text = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
            let items = vec![format!("*{prev}"); 9].join(", ");
            text.push_str(&format!("{name}: &{name} [{items}]\n"));
        }
        let start = std::time::Instant::now();
        let d = parse_file(FileId(0), &text).unwrap_err();
        assert!(
            d.message.contains("copy more than 100000 nodes"),
            "{}",
            d.message
        );
        // Recording `&e` (the value its nine `*d` built) is what crosses the limit.
        assert_eq!(&text[d.span.range()], "&e");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
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
