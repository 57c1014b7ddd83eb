//! TOML job files (`jobs/`), the one loader for every subcommand that takes one.
//!
//! Contract: [`load`] reads the file as a TOML table, lays `overrides` over it key by key
//! (a key in `overrides` replaces the file's), and deserializes the result into `T`. The
//! target type decides what is required, what defaults apply and which keys are unknown
//! (use `#[serde(deny_unknown_fields)]`); every error names the file.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

/// Reads `path` (when given), lays `overrides` over it and deserializes the merged table.
/// Without a file the overrides alone are deserialized.
pub fn load<T: DeserializeOwned>(path: Option<&Path>, overrides: toml::Table) -> Result<T> {
    let mut table = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the job file {}", path.display()))?;
            text.parse::<toml::Table>()
                .with_context(|| format!("in the job file {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    table.extend(overrides);
    let what = path.map_or("the settings".to_string(), |p| {
        format!("the job file {}", p.display())
    });
    toml::Value::Table(table)
        .try_into()
        .with_context(|| format!("in {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Job {
        a: Option<i64>,
        b: Option<String>,
    }

    #[test]
    fn overrides_win_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.toml");
        std::fs::write(&path, "a = 1\nb = \"file\"\n").unwrap();
        let mut over = toml::Table::new();
        over.insert("b".into(), "flag".into());
        let job: Job = load(Some(&path), over).unwrap();
        assert_eq!(
            job,
            Job {
                a: Some(1),
                b: Some("flag".into())
            }
        );
        std::fs::write(&path, "a = 1\nc = 2\n").unwrap();
        let err = format!(
            "{:#}",
            load::<Job>(Some(&path), toml::Table::new()).unwrap_err()
        );
        assert!(err.contains("job.toml") && err.contains('c'), "{err}");
    }
}
