//! Instantiating one level of a task tree: child names and dependency edges (pure).
//!
//! Children are instantiated lazily, one level at a time, when their parent is planned: a
//! group retry then only has to re-instantiate the group's direct children from its
//! definition, and deeper levels follow as each child group is planned.

/// How a group's children are ordered, after evaluating `_parallel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallel {
    Sequential,
    All,
    /// Consecutive chunks of this many; each task of chunk k+1 waits for all of chunk k.
    Limit(u32),
}

impl Parallel {
    /// `_parallel: {limit: N}`; `limit: 0` means no limit, as in Digdag.
    pub fn limit(n: u32) -> Parallel {
        if n == 0 {
            Parallel::All
        } else {
            Parallel::Limit(n)
        }
    }
}

/// What ordering needs of one child definition.
#[derive(Clone, Copy, Debug)]
pub struct Child<'a> {
    /// The segment name with its `+`.
    pub name: &'a str,
    pub background: bool,
    /// `_after:` sibling names.
    pub after: &'a [String],
}

/// One child to insert: its definition index and the indices of its upstream siblings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSpec {
    pub index: usize,
    pub full_name: String,
    pub upstream: Vec<usize>,
}

/// `+wf` + `+load` -> `+wf+load`; `+wf+t` + `^sub` -> `+wf+t^sub`.
pub fn full_name(parent: &str, child: &str) -> String {
    format!("{parent}{child}")
}

/// The earlier siblings `_after` names (with or without their `+`).
fn after_indices(defs: &[Child<'_>], i: usize, after: &[String]) -> Vec<usize> {
    after
        .iter()
        .filter_map(|name| {
            let name = name.trim_start_matches('+');
            defs.iter()
                .take(i)
                .position(|d| d.name.trim_start_matches('+') == name)
        })
        .collect()
}

/// The rows and edges of a group's direct children.
pub fn children(parent_full_name: &str, defs: &[Child<'_>], mode: Parallel) -> Vec<ChildSpec> {
    let mut out: Vec<ChildSpec> = Vec::with_capacity(defs.len());
    // Sequential bookkeeping: the last normal task, and background tasks since it.
    let mut prev_normal: Option<usize> = None;
    let mut pending_background: Vec<usize> = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let upstream = match mode {
            Parallel::Sequential if def.background => {
                pending_background.push(i);
                Vec::new()
            }
            Parallel::Sequential => {
                let mut up: Vec<usize> = prev_normal.into_iter().collect();
                up.append(&mut pending_background);
                up.sort_unstable();
                prev_normal = Some(i);
                up
            }
            Parallel::All => after_indices(defs, i, def.after),
            // Chunks, and `_after` on top of them (an `_after` sibling in the previous chunk
            // adds nothing; an earlier one adds its edge).
            Parallel::Limit(n) => {
                let n = n.max(1) as usize;
                let chunk = i / n;
                let mut up: Vec<usize> = if chunk == 0 {
                    Vec::new()
                } else {
                    ((chunk - 1) * n..chunk * n).collect()
                };
                up.extend(after_indices(defs, i, def.after));
                up.sort_unstable();
                up.dedup();
                up
            }
        };
        out.push(ChildSpec {
            index: i,
            full_name: full_name(parent_full_name, def.name),
            upstream,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dig::TaskDef;
    use crate::engine::testkit::op;

    fn infos(defs: &[TaskDef]) -> Vec<Child<'_>> {
        defs.iter()
            .map(|d| Child {
                name: &d.name,
                background: d.background,
                after: &d.after,
            })
            .collect()
    }

    fn check(defs: &[TaskDef], mode: Parallel, expect: &[&[usize]]) {
        let got: Vec<Vec<usize>> = children("+wf", &infos(defs), mode)
            .into_iter()
            .map(|c| c.upstream)
            .collect();
        let expect: Vec<Vec<usize>> = expect.iter().map(|e| e.to_vec()).collect();
        assert_eq!(got, expect);
    }

    fn ops(n: usize) -> Vec<TaskDef> {
        (0..n).map(|i| op(&format!("+t{i}"), "echo", "x")).collect()
    }

    #[test]
    fn sequential_siblings_chain() {
        check(&ops(3), Parallel::Sequential, &[&[], &[0], &[1]]);
        assert_eq!(
            children("+wf", &infos(&ops(1)), Parallel::Sequential)[0].full_name,
            "+wf+t0"
        );
    }

    #[test]
    fn parallel_has_no_edges_but_after() {
        check(&ops(3), Parallel::All, &[&[], &[], &[]]);
        let mut defs = ops(3);
        defs[2].after = vec!["+t0".into(), "t1".into()];
        check(&defs, Parallel::All, &[&[], &[], &[0, 1]]);
    }

    #[test]
    fn parallel_limit_makes_chunks() {
        check(
            &ops(5),
            Parallel::Limit(2),
            &[&[], &[], &[0, 1], &[0, 1], &[2, 3]],
        );
    }

    #[test]
    fn after_is_honoured_in_limited_groups_and_limit_zero_is_unlimited() {
        let mut defs = ops(5);
        defs[4].after = vec!["+t0".into()];
        defs[1].after = vec!["t0".into()];
        check(
            &defs,
            Parallel::Limit(2),
            &[&[], &[0], &[0, 1], &[0, 1], &[0, 2, 3]],
        );
        assert_eq!(Parallel::limit(0), Parallel::All);
        assert_eq!(Parallel::limit(3), Parallel::Limit(3));
    }

    #[test]
    fn background_tasks_join_the_next_normal_one() {
        let mut defs = ops(5);
        defs[1].background = true;
        defs[2].background = true;
        // t0; t1, t2 in the background (no upstream); t3 waits for t0, t1, t2; t4 for t3.
        check(
            &defs,
            Parallel::Sequential,
            &[&[], &[], &[], &[0, 1, 2], &[3]],
        );
    }
}
