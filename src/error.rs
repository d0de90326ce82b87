//! How a failure reaches the user: its exit status and its "what to do next" hint.
//!
//! Every module has its own `thiserror` enum; each implements [`UserFacing`] so that `main`
//! can pick the spec's exit status (0/1/2/3) in one place and print one line with its hint.

/// The spec's classes of non-zero exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Exit 2: bad usage or configuration; nothing was fetched.
    Usage,
    /// Exit 3: stopped early (query limit, usage guard, window, signal); run again to resume.
    Resumable,
    /// Exit 1: anything else.
    Failure,
}

impl ExitKind {
    pub fn code(self) -> i32 {
        match self {
            ExitKind::Usage => 2,
            ExitKind::Resumable => 3,
            ExitKind::Failure => 1,
        }
    }

    /// This class for an error met once reading started: files may exist, so a usage-class
    /// error is a failure (exit 1), never exit 2.
    pub fn once_reading(self) -> Self {
        match self {
            ExitKind::Usage => ExitKind::Failure,
            other => other,
        }
    }
}

/// Implemented by every error that can end a command.
pub trait UserFacing: std::error::Error {
    /// Which exit status this error ends the process with.
    fn exit_kind(&self) -> ExitKind;

    /// What the user should do next, if the message alone does not say it.
    fn hint(&self) -> Option<String> {
        None
    }
}

/// Names for a message, each in backticks, comma-separated: `` `A`, `B` ``.
pub fn quoted<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}
