//! YAML anchors (`&name`) and aliases (`*name`) of one file: the registry of anchored values
//! and the bounds that keep copies finite (an alias bomb is refused, not expanded).
//!
//! SnakeYAML shares an anchored node between its uses and Jackson writes it out once per use,
//! so in Digdag an alias is a copy. The tree here is owned, so an alias is a clone, and every
//! node cloned (when an anchor is recorded and when an alias copies it) counts against
//! [`MAX_COPIED_NODES`]. Like SnakeYAML 1.23, a later `&name` replaces an earlier one.

use crate::diag::Span;
use crate::dig::value::{Value, ValueKind};
use std::collections::HashMap;

/// How many nodes anchors and aliases may copy in one file. A real file copies a few small
/// mappings; a "billion laughs" file (ten aliases of ten aliases of ...) reaches this in a
/// few lines and is refused before it takes more than a few megabytes.
pub const MAX_COPIED_NODES: usize = 100_000;

/// Where an alias took its value from, so a diagnostic inside an aliased value can name both
/// the anchor and the alias.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AliasUse {
    pub name: String,
    /// The `&name` token.
    pub anchor: Span,
    /// The anchored node, whose spans the copy keeps (except its root's).
    pub node: Span,
    /// The `*name` token, which is the copy's root span.
    pub alias: Span,
}

struct Anchored {
    value: Value,
    anchor: Span,
    /// Nesting levels of collections in the value (a scalar is 0).
    height: usize,
    nodes: usize,
}

/// Why an alias cannot be expanded.
#[derive(Debug)]
pub(crate) enum AliasError {
    Unknown,
    /// The alias is inside the value of its own anchor.
    Recursive,
    /// The copy would nest collections this many levels deep, counted from the document root.
    TooDeep(usize),
    /// The copy would bring the nodes copied in this file to this many.
    TooMany(usize),
}

#[derive(Default)]
pub(crate) struct Anchors {
    defined: HashMap<String, Anchored>,
    /// Anchors whose value is being parsed.
    open: Vec<String>,
    copied: usize,
    pub uses: Vec<AliasUse>,
}

impl Anchors {
    /// An anchor starts: its value is being parsed.
    pub(crate) fn open(&mut self, name: &str) {
        self.open.push(name.to_string());
    }

    /// The value of the innermost open anchor is complete. `Err` carries the copied-node count
    /// that recording it would reach, when that is over the limit.
    pub(crate) fn close(&mut self, anchor: Span, value: &Value) -> Result<(), usize> {
        let Some(name) = self.open.pop() else {
            return Ok(());
        };
        let (height, nodes) = measure(value);
        let copied = self.copied.saturating_add(nodes);
        if copied > MAX_COPIED_NODES {
            return Err(copied);
        }
        self.copied = copied;
        let anchored = Anchored {
            value: value.clone(),
            anchor,
            height,
            nodes,
        };
        self.defined.insert(name, anchored);
        Ok(())
    }

    /// A copy of the value anchored as `name`, for an alias at `alias` inside `depth` open
    /// collections. The copy's root takes the alias's span; the nodes inside keep theirs.
    pub(crate) fn expand(
        &mut self,
        name: &str,
        alias: Span,
        depth: usize,
    ) -> Result<Value, AliasError> {
        if self.open.iter().any(|n| n == name) {
            return Err(AliasError::Recursive);
        }
        let anchored = self.defined.get(name).ok_or(AliasError::Unknown)?;
        let deepest = depth.saturating_add(anchored.height);
        if deepest > crate::dig::syntax::MAX_DEPTH {
            return Err(AliasError::TooDeep(deepest));
        }
        let copied = self.copied.saturating_add(anchored.nodes);
        if copied > MAX_COPIED_NODES {
            return Err(AliasError::TooMany(copied));
        }
        self.copied = copied;
        let mut value = anchored.value.clone();
        value.span = alias;
        self.uses.push(AliasUse {
            name: name.to_string(),
            anchor: anchored.anchor,
            node: anchored.value.span,
            alias,
        });
        Ok(value)
    }

    /// The defined anchor names, for "did you mean".
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.defined.keys().map(String::as_str)
    }
}

/// Collection nesting levels and node count of a value. The recursion is bounded because
/// every tree is at most `MAX_DEPTH` deep.
fn measure(value: &Value) -> (usize, usize) {
    match &value.kind {
        ValueKind::Seq(items) => items.iter().fold((1, 1), |(h, n), v| {
            let (vh, vn) = measure(v);
            (h.max(vh + 1), n.saturating_add(vn))
        }),
        ValueKind::Map(map) => map.entries.iter().fold((1, 1), |(h, n), (_, v)| {
            let (vh, vn) = measure(v);
            (h.max(vh + 1), n.saturating_add(vn).saturating_add(1))
        }),
        _ => (0, 1),
    }
}
