//! Runs the engine's actions after commit and turns operator results into events.

/// Host failures while running tasks (spawn errors, lost channels).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}
