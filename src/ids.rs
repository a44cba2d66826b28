//! Typed ids for rows of the store: never a bare `i64` across module boundaries.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A project (a directory of `.dig` files).
    ProjectId
);
id_type!(
    /// One loaded definition of a workflow, identified by the hash of its sources.
    RevisionId
);
id_type!(
    /// A workflow at one `session_time`.
    SessionId
);
id_type!(
    /// One try of a session, unique by attempt name.
    AttemptId
);
id_type!(
    /// A node of an attempt's task tree.
    TaskId
);
id_type!(
    /// The run number of a task: every start increments it, and a completion is applied only
    /// when its fence is still the task's current one (late results of fenced-off runs are
    /// ignored).
    Fence
);
