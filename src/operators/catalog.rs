//! The one table of every operator name spade knows: spade's own and Digdag's.
//!
//! `supported: true` marks what spade runs (or will run through its generators: `for_each>`,
//! `if>`, `call>`, ...). Digdag operators spade does not run yet load with a warning, so a
//! project written for Digdag can be checked as a whole; running such a task fails it unless an
//! executable supplies the operator (`operators::external`), as it may for any other name.

use crate::diag::{Diagnostic, Span};
use crate::dig::suggest::did_you_mean;

/// One operator name and what spade does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorInfo {
    /// Without the `>`.
    pub name: &'static str,
    pub supported: bool,
    /// Expands into child tasks from `_do:` / a called file instead of running a process.
    pub generator: bool,
}

const fn op(name: &'static str, supported: bool, generator: bool) -> OperatorInfo {
    OperatorInfo {
        name,
        supported,
        generator,
    }
}

/// Every known operator, spade's first.
pub const CATALOG: &[OperatorInfo] = &[
    op("sh", true, false),
    op("echo", true, false),
    op("fail", true, false),
    op("wait", true, false),
    op("nop", true, false),
    op("for_each", true, true),
    op("for_range", true, true),
    op("loop", true, true),
    op("if", true, true),
    op("call", true, true),
    op("require", true, false),
    op("http", true, false),
    op("http_call", true, true),
    // Digdag's operators that spade does not run yet (digdag-standards, digdag-core and the
    // Treasure Data plugins shipped with Digdag).
    op("py", true, false), // built in (`operators::py`); kept in Digdag's order
    op("rb", false, false),
    op("embulk", false, false),
    op("notify", false, false),
    op("mail", false, false),
    op("td", false, false),
    op("td_run", false, false),
    op("td_ddl", false, false),
    op("td_load", false, false),
    op("td_for_each", false, true),
    op("td_wait", false, false),
    op("td_wait_table", false, false),
    op("td_table_export", false, false),
    op("td_result_export", false, false),
    op("td_partial_delete", false, false),
    op("pg", false, false),
    op("redshift", false, false),
    op("redshift_load", false, false),
    op("redshift_unload", false, false),
    op("s3_wait", false, false),
    op("gcs_wait", false, false),
    op("bq", false, false),
    op("bq_ddl", false, false),
    op("bq_extract", false, false),
    op("bq_load", false, false),
    op("emr", false, false),
    op("param_get", false, false),
    op("param_set", false, false),
    // Only in Digdag's own test suite (`digdag-core` test resources), accepted there.
    op("store", false, false),
    op("noop", false, false),
];

/// The entry for `name` (without `>`).
pub fn lookup(name: &str) -> Option<&'static OperatorInfo> {
    CATALOG.iter().find(|o| o.name == name)
}

/// Every known name, for "did you mean" hints.
pub fn names() -> impl Iterator<Item = &'static str> {
    CATALOG.iter().map(|o| o.name)
}

/// The diagnostic for a task whose operator spade does not have built in and no executable
/// supplies: a warning for Digdag's operators (the file loads; running the task fails), an
/// error with "did you mean" for any other name. `also_known` adds names to the hint (the
/// project's own operator executables).
pub fn not_built_in<'a>(
    name: &str,
    task: &str,
    span: Span,
    also_known: impl IntoIterator<Item = &'a str>,
) -> Diagnostic {
    let places = executable_places(name);
    if lookup(name).is_some() {
        return Diagnostic::warning(
            span,
            format!("operator `{name}>` of task `{task}` is not supported by spade yet"),
        )
        .with_help(format!(
            "`spade check` accepts it, but running this task fails unless an executable supplies it: {places} (see docs/operators.md)"
        ));
    }
    let catalog = names().map(|n| -> &'a str { n });
    let hint = did_you_mean(name, catalog.chain(also_known));
    let help = match hint {
        Some(h) => format!("did you mean `{h}>`?"),
        None => format!(
            "spade runs {}; to add `{name}>`, put an executable at {places} (see docs/operators.md)",
            built_in_list()
        ),
    };
    Diagnostic::error(span, format!("unknown operator `{name}>`")).with_help(help)
}

/// Where an executable supplying operator `name` is looked for, as a help clause.
pub fn executable_places(name: &str) -> String {
    format!("`operators/{name}` in the project or `spade-operator-{name}` on `PATH`")
}

/// "`sh>`, `echo>`, ... and `py>`": the operators spade runs, for help lines.
fn built_in_list() -> String {
    let names: Vec<String> = CATALOG
        .iter()
        .filter(|o| o.supported)
        .map(|o| format!("`{}>`", o.name))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique_and_spade_runs_its_core() {
        let mut names: Vec<_> = names().collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        for name in [
            "sh", "echo", "fail", "wait", "nop", "for_each", "if", "call",
        ] {
            assert!(lookup(name).is_some_and(|o| o.supported), "{name}");
        }
        assert!(lookup("td").is_some_and(|o| !o.supported));
        assert!(lookup("py").is_some_and(|o| o.supported));
        assert!(lookup("shh").is_none());
    }

    #[test]
    fn operators_spade_lacks_get_a_warning_or_an_error_that_says_how_to_supply_them() {
        let d = not_built_in("td", "+q", Span::NONE, []);
        assert!(!d.is_error());
        assert_eq!(
            d.message,
            "operator `td>` of task `+q` is not supported by spade yet"
        );
        assert!(d
            .help
            .unwrap()
            .contains("`operators/td` in the project or `spade-operator-td` on `PATH`"));
        let d = not_built_in("shh", "+a", Span::NONE, []);
        assert!(d.is_error());
        assert_eq!(d.message, "unknown operator `shh>`");
        assert_eq!(d.help.as_deref(), Some("did you mean `sh>`?"));
        let d = not_built_in("slak", "+a", Span::NONE, ["slack"]);
        assert_eq!(d.help.as_deref(), Some("did you mean `slack>`?"));
        let help = not_built_in("frobnicate", "+a", Span::NONE, [])
            .help
            .unwrap();
        assert!(help.starts_with("spade runs `sh>`, `echo>`,"), "{help}");
        assert!(
            help.contains(
                " and `py>`; to add `frobnicate>`, put an executable at `operators/frobnicate`"
            ),
            "{help}"
        );
    }
}
