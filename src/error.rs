//! The top-level error and the one place that decides exit codes.

/// Everything that can stop a `spade` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line input: exit 2.
    #[error("{0}")]
    Usage(String),
    /// What the command wants is held by another live process (an attempt another `spade run`
    /// drives, a database another daemon serves): exit 2, with who holds it.
    #[error("{0}")]
    InUse(String),
    /// The files have errors (already printed as diagnostics): exit 2 for run, 1 for check.
    #[error("{count} error(s) in workflow files")]
    InvalidWorkflows { count: usize },
    #[error(transparent)]
    Dig(#[from] crate::dig::Error),
    #[error(transparent)]
    Expr(#[from] crate::expr::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    #[error(transparent)]
    Executor(#[from] crate::executor::Error),
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::Error),
    #[error(transparent)]
    Client(#[from] crate::client::Error),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// 2 for input the user must fix; 1 for everything else (a failed attempt is not an
    /// `Error`: `spade run` maps it to 1 itself).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::InUse(_)
            | Error::InvalidWorkflows { .. }
            | Error::Dig(_)
            | Error::Expr(_) => 2,
            Error::Config(_) => 2,
            Error::Daemon(e) if e.is_user_fixable() => 2,
            Error::Store(e) if e.is_user_fixable() => 2,
            Error::Engine(e) if e.is_user_fixable() => 2,
            Error::Client(e) if e.is_user_fixable() => 2,
            Error::Client(_)
            | Error::Store(_)
            | Error::Engine(_)
            | Error::Executor(_)
            | Error::Daemon(_)
            | Error::Io { .. } => 1,
        }
    }
}

/// `outer: inner: innermost`, the way ripgrep prints `{:#}`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
