//! Resume matching: which rows of a resumed attempt take over the previous try's rows.
//!
//! A row inserted while its attempt resumes is matched to the previous try's row of the same
//! full name under its parent's match, when three things hold: the parent is matched (and did
//! not go through a group retry in this try), the two definitions have the same fingerprint
//! (`def::own_fingerprint`: the node's own fields, spans left out, plus its `_check`), and no
//! upstream sibling runs again. A matched operator that succeeded is kept: inserted succeeded
//! with the old stores (`Apply::keep`), never run. A matched group runs again so that each of
//! its children is matched in turn. Everything else runs: a changed task, a new one, and
//! every task after one that runs (its downstream siblings through the plan's edges, and their
//! subtrees), as `spade retry --resume` promises: a changed task reruns with everything after
//! it, and what it fed is never kept stale.
//!
//! The match is decided once, when the row is inserted, and stored (`tasks.resumes_task_id`):
//! children read their parent's match back, so a group planned in a later transaction, or
//! after a restart, is matched exactly as it would have been at once.

use super::Apply;
use crate::dig::ParallelDef;
use crate::engine::def::{self, DefId, Node, NodeKind};
use crate::engine::plan::Parallel;
use crate::engine::{Error, ResumeReport, TaskState};
use crate::ids::TaskId;
use crate::store::rows::{self, Role, TaskRow};
use crate::store::sql;
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;
use std::rc::Rc;

type Fingerprint = [u8; 32];

/// What one transaction read and computed for resume matching.
#[derive(Default)]
pub(super) struct Memo {
    /// Each new row's counterpart in the previous try (`None` when it has none).
    previous: HashMap<TaskId, Option<Rc<TaskRow>>>,
    /// The live children of previous-try rows, by full name (read once per parent).
    previous_children: HashMap<TaskId, Rc<HashMap<String, Rc<TaskRow>>>>,
    /// `own_fingerprint` plus the `_check` subtree, by node.
    own: HashMap<DefId, Fingerprint>,
    /// A node's own fingerprint with its children's subtrees (handlers' `_error` left out).
    subtree: HashMap<DefId, Fingerprint>,
}

/// How a new row relates to the previous try.
pub(super) struct Decision {
    /// The previous row it takes over, if matched.
    pub matched: Option<Rc<TaskRow>>,
    /// Kept: succeeded before, inserted succeeded now.
    pub keep: bool,
    /// Something of it or its subtree runs in this try: its downstream siblings run too.
    pub runs: bool,
    /// Why it is not matched, for the report.
    pub why: Unmatched,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Unmatched {
    Matched,
    /// The previous try had no task of that name here.
    New,
    /// Its definition changed.
    Changed,
    /// An upstream sibling runs again.
    After,
    /// The task a resume runs again from.
    From,
}

/// Whether `full_name` is the task `from` or one of its ancestors (a group containing it runs,
/// and so do the tasks after it).
fn leads_to(full_name: &str, from: &str) -> bool {
    from.strip_prefix(full_name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', '^']))
}

impl Apply<'_, '_> {
    /// The previous-try row that `row` takes over, as decided when it was inserted.
    pub(super) fn previous_of(&mut self, row: &TaskRow) -> Result<Option<Rc<TaskRow>>, Error> {
        if let Some(p) = self.resume.previous.get(&row.id) {
            return Ok(p.clone());
        }
        let old: Option<i64> = self
            .tx
            .prepare_cached("SELECT resumes_task_id FROM tasks WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![row.id.0], |r| r.get(0)))
            .optional()
            .map_err(sql("resume_match"))?
            .flatten();
        let found = match old {
            Some(id) => Some(Rc::new(self.load(TaskId(id))?)),
            None => None,
        };
        self.resume.previous.insert(row.id, found.clone());
        Ok(found)
    }

    fn set_previous(&mut self, row: TaskId, old: &Rc<TaskRow>) -> Result<(), Error> {
        crate::store::exec(
            self.tx,
            "resume_match",
            "UPDATE tasks SET resumes_task_id = ?1 WHERE id = ?2",
            params![old.id.0, row.0],
        )?;
        self.resume.previous.insert(row, Some(Rc::clone(old)));
        Ok(())
    }

    /// The live children of a previous-try row by full name, read once: a resumed group of
    /// thousands of children looks each one up without a scan.
    fn previous_children_of(
        &mut self,
        old: &TaskRow,
    ) -> Result<Rc<HashMap<String, Rc<TaskRow>>>, Error> {
        if let Some(c) = self.resume.previous_children.get(&old.id) {
            return Ok(Rc::clone(c));
        }
        let children: HashMap<String, Rc<TaskRow>> = rows::live_children(self.tx, old)?
            .into_iter()
            .filter(|c| c.role != Role::Error)
            .map(|c| (c.full_name.clone(), Rc::new(c)))
            .collect();
        let children = Rc::new(children);
        self.resume
            .previous_children
            .insert(old.id, Rc::clone(&children));
        Ok(children)
    }

    /// A node's own fingerprint, with its `_check` handler's whole subtree (a task whose check
    /// changed has not been checked as it is now).
    fn own_fingerprint(&mut self, id: DefId) -> Result<Fingerprint, Error> {
        if let Some(f) = self.resume.own.get(&id) {
            return Ok(*f);
        }
        let node = self.node(id)?;
        let own = def::own_fingerprint(&node);
        let f = match node.check {
            None => own,
            Some(check) => def::combine_fingerprints(&[own, self.subtree_fingerprint(check)?]),
        };
        self.resume.own.insert(id, f);
        Ok(f)
    }

    /// A node's fingerprint with its children's, in order. Recursion is bounded by the task
    /// depth limit (`dig::MAX_TASK_DEPTH`), which every stored definition passed.
    fn subtree_fingerprint(&mut self, id: DefId) -> Result<Fingerprint, Error> {
        if let Some(f) = self.resume.subtree.get(&id) {
            return Ok(*f);
        }
        let node = self.node(id)?;
        let mut parts = vec![self.own_fingerprint(id)?];
        if let NodeKind::Group(children) = &node.kind {
            for c in children {
                parts.push(self.subtree_fingerprint(*c)?);
            }
        }
        let f = def::combine_fingerprints(&parts);
        self.resume.subtree.insert(id, f);
        Ok(f)
    }

    /// Decides a new row of definition `def`, named `full_name`, against the previous try's
    /// rows under `old_parent`.
    fn decide(
        &mut self,
        old_parent: Option<&Rc<TaskRow>>,
        def: DefId,
        full_name: &str,
        upstream_runs: bool,
        from: Option<&str>,
    ) -> Result<Decision, Error> {
        let runs = |why| Decision {
            matched: None,
            keep: false,
            runs: true,
            why,
        };
        let Some(old_parent) = old_parent else {
            return Ok(runs(Unmatched::New));
        };
        let Some(old) = self
            .previous_children_of(old_parent)?
            .get(full_name)
            .cloned()
        else {
            return Ok(runs(Unmatched::New));
        };
        if self.own_fingerprint(def)? != self.own_fingerprint(old.def_id)? {
            return Ok(runs(Unmatched::Changed));
        }
        if upstream_runs {
            return Ok(runs(Unmatched::After));
        }
        if from == Some(full_name) {
            return Ok(runs(Unmatched::From));
        }
        // A group on the way to the `from` task is matched (what comes before the task in it
        // is kept) and counts as running.
        let on_the_way = from.is_some_and(|f| leads_to(full_name, f));
        let node = self.node(def)?;
        let succeeded = old.state == TaskState::Succeeded;
        let same_subtree = node.is_group()
            && old.is_group
            && self.subtree_fingerprint(def)? == self.subtree_fingerprint(old.def_id)?;
        let keep = succeeded
            && !on_the_way
            && match (node.is_group(), old.is_group) {
                // Operators are kept (a kept generator carries its children's stores in
                // `sub_fold`).
                (false, false) => true,
                // A group runs again, so that each task of the definition as it is now is
                // matched one by one and a task added to it runs (Digdag inserts and runs
                // it); only a childless succeeded group (an empty one, or one an older spade
                // kept whole, its subtree's stores folded into its own) is kept, and only if
                // its subtree is unchanged.
                (true, true) => same_subtree && !self.has_children(&old)?,
                (true, false) | (false, true) => false,
            };
        // A group whose subtree is unchanged and succeeded keeps every task in it.
        let runs = on_the_way || !(keep || (succeeded && same_subtree));
        Ok(Decision {
            matched: Some(old),
            keep,
            runs,
            why: Unmatched::Matched,
        })
    }

    fn has_children(&mut self, old: &TaskRow) -> Result<bool, Error> {
        self.tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM tasks WHERE parent_id = ?1 AND epoch = ?2)",
            )
            .and_then(|mut s| s.query_row(params![old.id.0, old.child_epoch], |r| r.get(0)))
            .map_err(sql("has_children"))
            .map_err(Error::from)
    }

    /// Matches the root of a resumed try to the previous root: everything runs again when the
    /// workflow's own fields (its top-level `_export:`, params, ...) changed.
    pub(super) fn match_root(&mut self, root: TaskId, def: DefId) -> Result<(), Error> {
        let row = self.load(root)?;
        let attempt = self.attempt(row.attempt)?;
        let Some(old_root) = attempt.resume_root else {
            return Ok(());
        };
        if attempt.resume_from.as_deref() == Some(row.full_name.as_str()) {
            return Ok(());
        }
        let old = Rc::new(self.load(old_root)?);
        if self.own_fingerprint(def)? == self.own_fingerprint(old.def_id)? {
            self.set_previous(root, &old)?;
        }
        Ok(())
    }

    /// Matches a child just inserted under `parent` (kept at once when it succeeded before and
    /// nothing upstream of it runs); returns whether it, or anything in it, runs in this try.
    pub(super) fn match_child(
        &mut self,
        parent: &TaskRow,
        child: TaskId,
        upstream_runs: bool,
    ) -> Result<bool, Error> {
        // Under a parent that went through a group retry in this try (`child_epoch > 0`),
        // everything runs again, as a retry should.
        let old_parent = if parent.child_epoch == 0 {
            self.previous_of(parent)?
        } else {
            None
        };
        let row = self.load(child)?;
        let from = self.attempt(row.attempt)?.resume_from;
        let d = self.decide(
            old_parent.as_ref(),
            row.def_id,
            &row.full_name,
            upstream_runs,
            from.as_deref(),
        )?;
        if let Some(old) = &d.matched {
            self.set_previous(child, old)?;
            if d.keep {
                self.keep(row, old)?;
            }
        }
        Ok(d.runs)
    }

    /// What resuming `old_root` with the definition `root` will keep, run new, and run again
    /// because it changed or comes after a task that runs: the same decisions as the rows
    /// get when they are inserted, made ahead over the stored definition. Levels whose
    /// `_parallel:` is an expression are taken as sequential here (the report may then name
    /// fewer kept tasks than the run keeps).
    pub(crate) fn resume_report(
        &mut self,
        root: DefId,
        old_root: TaskId,
        from: Option<&str>,
    ) -> Result<ResumeReport, Error> {
        let mut report = ResumeReport::default();
        let old = Rc::new(self.load(old_root)?);
        let root_node = self.node(root)?;
        if from == Some(root_node.name.as_str()) {
            report.from = Some(root_node.name.clone());
            return Ok(report);
        }
        if self.own_fingerprint(root)? != self.own_fingerprint(old.def_id)? {
            report.changed.push(root_node.name.clone());
            return Ok(report);
        }
        // (definition, its full name, its match): an explicit stack of matched groups.
        let mut stack: Vec<(DefId, String, Rc<TaskRow>)> =
            vec![(root, root_node.name.clone(), old)];
        while let Some((group, full, old_group)) = stack.pop() {
            let node = self.node(group)?;
            let NodeKind::Group(children) = &node.kind else {
                continue;
            };
            let specs = self.child_specs(&full, children, static_parallel(&node))?;
            let mut runs: Vec<bool> = Vec::with_capacity(specs.len());
            let mut nested = Vec::new();
            for (spec, child) in specs.iter().zip(children) {
                let upstream_runs = spec.upstream.iter().any(|&u| runs.get(u) == Some(&true));
                let d = self.decide(
                    Some(&old_group),
                    *child,
                    &spec.full_name,
                    upstream_runs,
                    from,
                )?;
                runs.push(d.runs);
                match (d.why, &d.matched) {
                    (Unmatched::New, _) => report.new.push(spec.full_name.clone()),
                    (Unmatched::Changed, _) => report.changed.push(spec.full_name.clone()),
                    (Unmatched::From, _) => report.from = Some(spec.full_name.clone()),
                    (Unmatched::After, _) => {
                        // Only what ran before runs *again*; a task after a failed one
                        // never ran.
                        let old = self.previous_children_of(&old_group)?;
                        if old
                            .get(&spec.full_name)
                            .is_some_and(|o| o.state == TaskState::Succeeded)
                        {
                            report.after_changed.push(spec.full_name.clone());
                        }
                    }
                    (Unmatched::Matched, _) if d.keep => report.kept.push(spec.full_name.clone()),
                    (Unmatched::Matched, Some(old)) => {
                        nested.push((*child, spec.full_name.clone(), Rc::clone(old)));
                    }
                    (Unmatched::Matched, None) => {}
                }
            }
            // A level's groups are looked into after the level, the first group first.
            stack.extend(nested.into_iter().rev());
        }
        Ok(report)
    }
}

/// A level's `_parallel:` as written, without evaluating an expression (taken as
/// sequential, the stricter reading for what runs after what).
fn static_parallel(node: &Node) -> Parallel {
    match &node.parallel {
        None | Some(ParallelDef::All(false)) | Some(ParallelDef::Expr(_)) => Parallel::Sequential,
        Some(ParallelDef::All(true)) => Parallel::All,
        Some(ParallelDef::Limit(n)) => Parallel::limit(*n),
    }
}
