//! Reading back the JSON columns spade wrote: as deep as spade can write them, and no deeper.
//!
//! serde_json stops at 128 levels by default, but a definition or a param a `.dig` file may
//! hold nests deeper than that (a YAML level costs up to four JSON levels in a stored
//! definition), so a workflow that `spade check` accepted would fail every run with "corrupt
//! task definition". Here the limit follows from `dig::MAX_DEPTH` instead: the text is measured
//! first, with a loop, so a deeper column is an error, and the parse grows its stack as it
//! needs (`serde_stacker`), so no depth up to the limit overflows it.

use crate::dig::MAX_DEPTH;
use serde::de::{DeserializeOwned, Error as _};

/// The deepest JSON column spade writes: a value of a `.dig` file nested [`MAX_DEPTH`]
/// mappings deep, stored in a task definition (four JSON levels a mapping: the kind, the
/// entries, the entry, the value), plus the levels of the definition around it.
pub const MAX_STORED_DEPTH: usize = 4 * MAX_DEPTH + 64;

/// Parses a column spade wrote, refusing nesting past [`MAX_STORED_DEPTH`].
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    let depth = nesting_depth(text);
    if depth > MAX_STORED_DEPTH {
        return Err(serde_json::Error::custom(format!(
            "nested {depth} levels deep, past the {MAX_STORED_DEPTH} spade ever writes"
        )));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    // A mapping of a definition costs about 5 KB of stack a level in a debug build, so 512 of
    // them would overflow a 2 MiB tokio worker: serde_stacker grows the stack as it goes.
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut de))?;
    de.end()?;
    Ok(value)
}

/// The deepest nesting of `[` and `{` in `text`, outside strings.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert_eq!(nesting_depth(r#"1"#), 0);
        assert_eq!(nesting_depth(r#"[{"a": [1]}, []]"#), 3);
        assert_eq!(nesting_depth(r#"["[[[", "\"[[", {"k\\": "{"}]"#), 2);
    }

    #[test]
    fn columns_deeper_than_serde_json_allows_read_back_up_to_the_limit() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let ok: serde_json::Value = from_str(&deep(MAX_STORED_DEPTH)).unwrap();
        assert!(ok.is_array());
        assert!(serde_json::from_str::<serde_json::Value>(&deep(200)).is_err());
        let err = from_str::<serde_json::Value>(&deep(MAX_STORED_DEPTH + 1)).unwrap_err();
        assert!(err.to_string().contains("past the 2112"), "{err}");
    }

    #[test]
    fn trailing_text_is_an_error() {
        assert!(from_str::<serde_json::Value>("[1] x").is_err());
    }
}
