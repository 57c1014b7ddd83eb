//! What kind of failure stopped a command: the exit code a scheduler acts on.
//!
//! | exit code | kind | what to do |
//! | --- | --- | --- |
//! | 0 | — | success |
//! | 1 | any other failure | read the message; likely a bug to report |
//! | 2 | [`Failure::BadInput`] | fix the job, the flags or the data the message names; retrying will not help |
//! | 3 | [`Failure::Conflict`] | another run holds what this one needs (a day's lease, [`super::lease`]), or another writer committed the day first (a Delta table, [`super::delta`]); retry later |
//! | 4 | [`Failure::Infrastructure`] | storage, network or device trouble; retry |
//! | 5 | [`Failure::Timeout`] | the run passed `--timeout`; nothing was published |
//!
//! Contract: code that knows why it fails marks its error with [`MarkFailure::failure`]
//! (a context that prints as the kind's name before the message; an error keeps its first
//! mark). [`Failure::of`] classifies an error: a timeout or conflict mark first; then
//! storage, network and other I/O trouble found anywhere in the error's chain (an
//! `object_store` error other than a missing or invalid path or a refused permission, an
//! I/O error other than a missing file or a refused permission), even under a bad-input
//! mark; then the mark; else none.

use std::fmt;

/// The kinds of failure that have their own exit code (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    BadInput,
    Conflict,
    Infrastructure,
    Timeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failure::BadInput => "bad input",
            Failure::Conflict => "conflicting run",
            Failure::Infrastructure => "infrastructure",
            Failure::Timeout => "timed out",
        })
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// The process exit code of this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            Failure::BadInput => 2,
            Failure::Conflict => 3,
            Failure::Infrastructure => 4,
            Failure::Timeout => 5,
        }
    }

    /// The kind of `e` (see the module docs), or None for a failure of no known kind.
    pub fn of(e: &anyhow::Error) -> Option<Failure> {
        // An error carries at most one mark (`failure` keeps the first).
        let mark = e.downcast_ref::<Failure>().copied();
        if let Some(explicit @ (Failure::Timeout | Failure::Conflict)) = mark {
            return Some(explicit);
        }
        if e.chain().any(is_infrastructure) {
            return Some(Failure::Infrastructure);
        }
        mark
    }
}

/// Storage, network or other I/O trouble (not a missing path or a refused permission,
/// which are the job's to fix).
fn is_infrastructure(cause: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(e) = cause.downcast_ref::<object_store::Error>() {
        return !matches!(
            e,
            object_store::Error::NotFound { .. }
                | object_store::Error::InvalidPath { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. }
                | object_store::Error::UnknownConfigurationKey { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        );
    }
    if let Some(e) = cause.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind::*;
        return !matches!(
            e.kind(),
            NotFound
                | PermissionDenied
                | AlreadyExists
                | InvalidInput
                | InvalidData
                | NotADirectory
                | IsADirectory
                | DirectoryNotEmpty
                | Unsupported
                | InvalidFilename
        );
    }
    false
}

/// Marks a result's error with a [`Failure`] kind.
pub trait MarkFailure<T> {
    /// The error, marked `kind` unless it already carries a mark.
    fn failure(self, kind: Failure) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> MarkFailure<T> for Result<T, E> {
    fn failure(self, kind: Failure) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            if e.downcast_ref::<Failure>().is_some() {
                e
            } else {
                e.context(kind)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{anyhow, Context};

    fn code(e: anyhow::Error) -> Option<i32> {
        Failure::of(&e).map(Failure::exit_code)
    }

    #[test]
    fn marks_and_causes_give_the_documented_codes() {
        let bad: anyhow::Result<()> = Err(anyhow!("table `users`: no column `user_id`"));
        let bad = bad.failure(Failure::BadInput).unwrap_err();
        assert_eq!(
            format!("{bad:#}"),
            "bad input: table `users`: no column `user_id`"
        );
        assert_eq!(code(bad), Some(2));
        assert_eq!(code(anyhow!("something else")), None);
        // A network failure under a bad-input mark is still infrastructure.
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let under: anyhow::Result<()> = Err(anyhow::Error::new(refused).context("listing s3://b/"));
        assert_eq!(code(under.failure(Failure::BadInput).unwrap_err()), Some(4));
        // A missing file is not.
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let missing: anyhow::Result<()> = Err(missing.into());
        assert_eq!(
            code(missing.failure(Failure::BadInput).unwrap_err()),
            Some(2)
        );
        let store = object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        };
        assert_eq!(code(anyhow::Error::new(store)), Some(4));
        // A timeout wins over everything; the first mark stays.
        let t: anyhow::Result<()> = Err(anyhow!("x").context(Failure::Timeout));
        let t = t.failure(Failure::BadInput).unwrap_err();
        assert_eq!(code(t), Some(5));
        let c: anyhow::Result<()> = Err(anyhow!("held by run 42"));
        assert_eq!(
            code(
                c.context("publishing")
                    .failure(Failure::Conflict)
                    .unwrap_err()
            ),
            Some(3)
        );
    }
}
