//! Notices changed workflow files: inotify through `notify`, or polling when inotify is not
//! available (a full watch table, a file system without it). Only files that can change a
//! load count (`*.dig`, and `*.yml`/`*.yaml` that `!include` may read); the state directory
//! and dot-directories are ignored.

use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watch {
    _watcher: Box<dyn notify::Watcher + Send>,
    /// How the directory is watched, for logs and `spade serve` status.
    pub mode: &'static str,
}

/// How often the fallback polls.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Watches `dir` recursively; every relevant change sends `()` (bursts are left to the
/// receiver to debounce).
pub fn watch(dir: &Path, changed: mpsc::UnboundedSender<()>) -> Result<Watch, notify::Error> {
    use notify::Watcher as _;
    let root = dir.to_path_buf();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(e) if e.paths.iter().any(|p| relevant(&root, p)) => {
            let _ = changed.send(());
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "file watch error"),
    };
    match notify::recommended_watcher(handler.clone()) {
        Ok(mut w) => match w.watch(dir, notify::RecursiveMode::Recursive) {
            Ok(()) => {
                return Ok(Watch {
                    _watcher: Box::new(w),
                    mode: "inotify",
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "inotify is not available; polling for changes instead")
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "inotify is not available; polling for changes instead")
        }
    }
    let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
    let mut w = notify::PollWatcher::new(handler, config)?;
    w.watch(dir, notify::RecursiveMode::Recursive)?;
    Ok(Watch {
        _watcher: Box::new(w),
        mode: "polling",
    })
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
