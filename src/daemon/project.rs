//! The project as the daemon serves it: the last good revision of every workflow, reloaded
//! when files change. A file with errors keeps its last good revision (every diagnostic is
//! logged in the usual `file:line:col` shape) and the daemon keeps serving.

use crate::catchup::Policy;
use crate::dig::Workflow;
use crate::schedule::Schedule;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One workflow as loaded.
#[derive(Debug)]
pub struct Loaded {
    pub workflow: Arc<Workflow>,
    /// The sources hashed into its revision (path, text).
    pub sources: Vec<(PathBuf, String)>,
    /// Its schedule, if it has one that can fire.
    pub schedule: Option<Scheduled>,
}

/// A workflow's schedule, ready to compute slots.
#[derive(Debug)]
pub struct Scheduled {
    pub schedule: Schedule,
    pub policy: Policy,
    /// The rule as written (kind, value, options, zone): a change re-plans the schedule.
    pub spec: String,
}

/// Every workflow the daemon serves, by name.
#[derive(Debug, Default)]
pub struct Project {
    pub dir: PathBuf,
    pub workflows: BTreeMap<String, Arc<Loaded>>,
}

/// What a (re)load found.
#[derive(Debug, Default)]
pub struct Report {
    /// Rendered diagnostics, each with whether it is an error.
    pub diagnostics: Vec<(bool, String)>,
    pub errors: usize,
    /// Workflows that kept their previous revision because their file has errors now.
    pub kept: Vec<String>,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Report {
    pub fn changed_anything(&self) -> bool {
        !(self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty())
    }
}

/// Loads `dir`, keeping from `previous` the revision of every workflow whose file has errors.
pub fn load(
    dir: &Path,
    previous: Option<&Project>,
) -> Result<(Project, Report), crate::dig::Error> {
    let loaded = crate::operators::external::load_project(dir)?;
    let mut report = Report::default();
    for d in &loaded.diagnostics {
        if d.is_error() {
            report.errors += 1;
        }
        report
            .diagnostics
            .push((d.is_error(), d.render(&loaded.sources)));
    }
    let mut project = Project {
        dir: dir.to_path_buf(),
        workflows: BTreeMap::new(),
    };
    for wf in &loaded.workflows {
        let sources = loaded
            .sources
            .get(wf.span.file)
            .map(|f| vec![(f.path.clone(), f.text.clone())])
            .unwrap_or_default();
        let schedule = wf.schedule.as_ref().and_then(|def| {
            match Schedule::from_def(def, &wf.timezone) {
                Ok(schedule) => Some(Scheduled {
                    policy: Policy::from_def(def),
                    spec: spec_text(def, &wf.timezone),
                    schedule,
                }),
                Err(e) => {
                    // The loader validated it; say so rather than drop it silently.
                    report
                        .diagnostics
                        .push((true, format!("{}: invalid schedule: {e}", wf.name)));
                    None
                }
            }
        });
        project.workflows.insert(
            wf.name.clone(),
            Arc::new(Loaded {
                workflow: Arc::new(wf.clone()),
                sources,
                schedule,
            }),
        );
    }
    // A top-level file that is present but did not load keeps its last good revision.
    let present = top_level_names(&loaded, dir);
    if let Some(prev) = previous {
        for (name, old) in &prev.workflows {
            if !project.workflows.contains_key(name) && present.contains(name) {
                report.kept.push(name.clone());
                project.workflows.insert(name.clone(), old.clone());
            }
        }
        for (name, now) in &project.workflows {
            match prev.workflows.get(name) {
                None => report.added.push(name.clone()),
                Some(old) if old.sources != now.sources => report.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        for name in prev.workflows.keys() {
            if !project.workflows.contains_key(name) {
                report.removed.push(name.clone());
            }
        }
    } else {
        report.added = project.workflows.keys().cloned().collect();
    }
    Ok((project, report))
}

/// Names of the top-level `*.dig` files that were read (whether or not they loaded).
fn top_level_names(loaded: &crate::dig::Project, dir: &Path) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    let mut id = 0u32;
    while let Some(file) = loaded.sources.get(crate::diag::FileId(id)) {
        id += 1;
        let parent_is_dir = file
            .path
            .parent()
            .is_some_and(|p| p == dir || (p.as_os_str().is_empty() && dir == Path::new(".")));
        if !parent_is_dir {
            continue;
        }
        if let Some(stem) = file
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".dig"))
        {
            names.insert(stem.to_owned());
        }
    }
    names
}

/// The schedule as a stable text: kind, value, options in order, and the zone.
fn spec_text(def: &crate::dig::ScheduleDef, timezone: &str) -> String {
    let options: serde_json::Map<String, serde_json::Value> = def
        .options
        .entries
        .iter()
        .map(|(k, v)| (k.name.clone(), v.to_json_raw()))
        .collect();
    serde_json::json!({
        "kind": def.kind,
        "value": def.value,
        "options": options,
        "timezone": timezone,
    })
    .to_string()
}
