//! Source files, spans and diagnostics: byte offsets in trees, `file:line:col` only when rendering.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range in one source file.
///
/// Unlike a bare `(start, end)` pair the span names its file, because `!include` splices nodes of
/// several files into one tree and every node must still point at the text it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// A span for generated items that have no source text (built-ins, CLI params).
    pub const NONE: Span = Span {
        file: FileId(u32::MAX),
        start: 0,
        end: 0,
    };

    pub fn is_none(self) -> bool {
        self.file == FileId(u32::MAX)
    }

    /// The smallest span that covers both.
    pub fn to(self, other: Span) -> Span {
        debug_assert_eq!(self.file, other.file);
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One loaded file: its path as shown to users, its text, and where each line starts.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<u32>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> SourceFile {
        let mut line_starts = vec![0u32];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(u32::try_from(i + 1).unwrap_or(u32::MAX));
            }
        }
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and 1-based column (in chars) of a byte offset; offsets past the end clamp.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let offset = offset.min(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0) as usize;
        let end = (offset as usize).max(start);
        let col = self
            .text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// The text of 1-based line `line`, without its line terminator.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return "";
        };
        let start = start as usize;
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&e| e as usize);
        let text = self.text.get(start..end).unwrap_or("");
        text.trim_end_matches('\n').trim_end_matches('\r')
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }
}

/// Every file a load touched, indexed by [`FileId`].
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX - 1));
        self.files.push(SourceFile::new(path, text));
        id
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .and_then(|i| u32::try_from(i).ok())
            .map(FileId)
    }

    /// The source text a span covers, or `""` for a span that is not in this map.
    pub fn snippet(&self, span: Span) -> &str {
        self.get(span.file)
            .and_then(|f| f.text.get(span.range()))
            .unwrap_or("")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One message about one place in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders GCC-style: `path:line:col: message`, the source line, a caret line, `= help:`.
    ///
    /// Tabs are expanded to 4 spaces in both the echoed line and the caret line so the carets
    /// stay under the text; a span at end of file still gets one caret.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        let prefix = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        let Some(file) = sources.get(self.span.file) else {
            let _ = writeln!(out, "{prefix}{}", self.message);
            if let Some(help) = &self.help {
                let _ = writeln!(out, "  = help: {help}");
            }
            return out;
        };
        let (line, col) = file.line_col(self.span.start);
        let _ = writeln!(
            out,
            "{}:{line}:{col}: {prefix}{}",
            file.path.display(),
            self.message
        );
        let text = file.line_text(line);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line} | {}", expand_tabs(text));
        // The caret covers the span on its first line, at least one column wide.
        let before: String = text.chars().take(col - 1).collect();
        let start_width = expand_tabs(&before).chars().count();
        let (end_line, end_col) = file.line_col(self.span.end);
        let span_text: String = if end_line == line {
            text.chars()
                .skip(col - 1)
                .take(end_col.saturating_sub(col))
                .collect()
        } else {
            text.chars().skip(col - 1).collect()
        };
        let width = expand_tabs(&span_text).chars().count().max(1);
        let _ = writeln!(
            out,
            "{pad} | {}{}",
            " ".repeat(start_width),
            "^".repeat(width)
        );
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

impl Diagnostic {
    /// The diagnostic with its location resolved, for `spade check --json`.
    pub fn to_json(&self, sources: &SourceMap) -> serde_json::Value {
        let location = sources.get(self.span.file).map(|f| {
            let (line, column) = f.line_col(self.span.start);
            let (end_line, end_column) = f.line_col(self.span.end);
            serde_json::json!({
                "path": f.path.display().to_string(),
                "line": line,
                "column": column,
                "end_line": end_line,
                "end_column": end_column,
            })
        });
        serde_json::json!({
            "severity": self.severity,
            "message": self.message,
            "help": self.help,
            "location": location,
        })
    }
}

fn expand_tabs(s: &str) -> String {
    s.replace('\t', "    ")
}

/// Sorts diagnostics by file and position, errors before warnings at the same place.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.span.file, a.span.start, a.severity).cmp(&(b.span.file, b.span.start, b.severity))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile::new(PathBuf::from("t.dig"), text.to_string())
    }

    #[test]
    fn line_col_handles_empty_eof_crlf_and_multibyte() {
        assert_eq!(file("").line_col(0), (1, 1));
        let f = file("a: 1\r\nbé: 2\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        assert_eq!(f.line_col(9), (2, 3)); // after the two-byte é
        assert_eq!(f.line_col(100), (3, 1));
        assert_eq!(f.line_text(1), "a: 1");
    }

    #[test]
    fn render_puts_caret_under_span_with_tabs() {
        let mut map = SourceMap::new();
        let id = map.add(PathBuf::from("w.dig"), "+a:\n\tshh>: x\n".to_string());
        let d = Diagnostic::error(Span::new(id, 5, 9), "unknown operator `shh>`")
            .with_help("did you mean `sh>`?");
        let expected = "w.dig:2:2: unknown operator `shh>`\n  |\n2 |     shh>: x\n  |     ^^^^\n  = help: did you mean `sh>`?\n";
        assert_eq!(d.render(&map), expected);
    }

    #[test]
    fn render_at_end_of_file_shows_one_caret() {
        let mut map = SourceMap::new();
        let id = map.add(PathBuf::from("w.dig"), "a:".to_string());
        let d = Diagnostic::error(Span::new(id, 2, 2), "x");
        assert!(d.render(&map).ends_with("  |   ^\n"));
    }
}
