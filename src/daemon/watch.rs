//! Notices changed workflow files: inotify through `notify`, or polling when inotify is not
//! available (a full watch table, a file system without it). Only files that can change a
//! load count (`*.dig`, and `*.yml`/`*.yaml` that `!include` may read); the state directory
//! and dot-directories are ignored.

use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watch {
    watcher: Box<dyn notify::Watcher + Send>,
    root: std::path::PathBuf,
    /// Subdirectories watched (recursively) so far.
    watched: std::collections::BTreeSet<std::path::PathBuf>,
    /// How the directory is watched, for logs and `spade serve` status.
    pub mode: &'static str,
}

/// How often the fallback polls.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Watches `dir` (its files, and every subdirectory that is not a dot-directory, recursively);
/// every relevant change sends `()` (bursts are left to the receiver to debounce). The state
/// directory (`.spade/`, where the database's WAL is written on every transition) and `.git/`
/// are not watched at all: watching them would wake the watcher on every commit.
pub fn watch(dir: &Path, changed: mpsc::UnboundedSender<()>) -> Result<Watch, notify::Error> {
    let root = dir.to_path_buf();
    let handler = {
        let root = root.clone();
        move |event: notify::Result<notify::Event>| match event {
            Ok(e) if e.paths.iter().any(|p| relevant(&root, p)) => {
                let _ = changed.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        }
    };
    let (watcher, mode): (Box<dyn notify::Watcher + Send>, _) =
        match notify::recommended_watcher(handler.clone()) {
            Ok(w) => (Box::new(w), "inotify"),
            Err(e) => {
                tracing::warn!(error = %e, "inotify is not available; polling for changes instead");
                let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
                (
                    Box::new(notify::PollWatcher::new(handler.clone(), config)?),
                    "polling",
                )
            }
        };
    let mut w = Watch {
        watcher,
        root,
        watched: Default::default(),
        mode,
    };
    if let Err(e) = w.watch_all() {
        if mode == "polling" {
            return Err(e);
        }
        tracing::warn!(error = %e, "inotify cannot watch the project; polling for changes instead");
        let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
        w.watcher = Box::new(notify::PollWatcher::new(handler, config)?);
        w.watched.clear();
        w.mode = "polling";
        w.watch_all()?;
    }
    Ok(w)
}

impl Watch {
    /// Watches subdirectories created since the last call (a reload calls it).
    pub fn refresh(&mut self) {
        if let Err(e) = self.watch_all() {
            tracing::warn!(error = %e, "cannot watch a new directory of the project");
        }
    }

    fn watch_all(&mut self) -> Result<(), notify::Error> {
        use notify::RecursiveMode;
        if self.watched.is_empty() {
            self.watcher
                .watch(&self.root, RecursiveMode::NonRecursive)?;
            self.watched.insert(self.root.clone());
        }
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden || !path.is_dir() || self.watched.contains(&path) {
                continue;
            }
            self.watcher.watch(&path, RecursiveMode::Recursive)?;
            self.watched.insert(path);
        }
        Ok(())
    }
}

/// Whether a change to `path` can change what loads from `root`.
fn relevant(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let hidden = rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    !hidden && matches!(ext, "dig" | "yml" | "yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workflow_files_outside_dot_directories_count() {
        let root = Path::new("/p");
        assert!(relevant(root, Path::new("/p/a.dig")));
        assert!(relevant(root, Path::new("/p/sub/inc.yml")));
        assert!(!relevant(root, Path::new("/p/.spade/spade.db-wal")));
        assert!(!relevant(root, Path::new("/p/.git/a.dig")));
        assert!(!relevant(root, Path::new("/p/scripts/load.sh")));
        assert!(!relevant(root, Path::new("/elsewhere/a.dig")));
    }
}
