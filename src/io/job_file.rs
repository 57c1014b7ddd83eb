//! TOML job files (`jobs/`), the one loader for every subcommand that takes one.
//!
//! Contract: [`load`] builds a job's settings from layers, each key from the strongest
//! layer that has it:
//! 1. the subcommand's dedicated flags (`--epochs 3`);
//! 2. `--set KEY=VALUE` (any key; `tables.NAME=…` for one entry of `[tables]`);
//! 3. environment variables `DUMN_<KEY>` (`DUMN_TOP_K=10`; not `[tables]`);
//! 4. the job file;
//! 5. the target type's defaults.
//!
//! Relative local paths written in the job file (the keys of kind
//! [`KeyKind::Location`]) are read from the job file's folder, so a job runs the same from
//! any working directory; paths given by flags, `--set` or the environment are read from
//! the working directory, as a shell user expects. Values from `--set` and the environment
//! are read as integers, floats or booleans when they parse as one, else as strings. The
//! target type decides what is required and which keys are unknown (it uses
//! `#[serde(deny_unknown_fields)]`); every error names the file, the flag or the variable.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;

use super::failure::{Failure, MarkFailure};

/// How a job file's key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A plain value.
    Value,
    /// A location (a local path or a URL such as `s3://…`).
    Location,
    /// A table of locations (`[tables]`).
    Locations,
    /// A name or, when it ends in `.sql`, a file (`adapter = "kuairand"` or `"mine.sql"`).
    NameOrSqlFile,
}

/// One key a job file may hold.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub kind: KeyKind,
}

/// A [`Key`].
pub const fn key(name: &'static str, kind: KeyKind) -> Key {
    Key { name, kind }
}

/// The layers a job's settings come from (see the module docs); the environment is read
/// by [`load`].
#[derive(Debug, Default)]
pub struct Layers<'a> {
    /// The job file, when there is one.
    pub file: Option<&'a Path>,
    /// `--set KEY=VALUE` pairs, in order (a later one wins).
    pub set: &'a [String],
    /// The dedicated flags that were given.
    pub flags: toml::Table,
}

/// The environment variable that sets `key`.
pub fn env_name(key: &str) -> String {
    format!("DUMN_{}", key.to_uppercase())
}

/// Builds `T` from `layers` and the process's environment (see the module docs); `keys`
/// are the keys `T` reads.
pub fn load<T: DeserializeOwned>(keys: &[Key], layers: Layers) -> Result<T> {
    load_with_env(keys, layers, &|name| std::env::var(name).ok())
}

/// [`load`] with the environment given as a function.
pub fn load_with_env<T: DeserializeOwned>(
    keys: &[Key],
    layers: Layers,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T> {
    merge(keys, layers, env).failure(Failure::BadInput)
}

fn merge<T: DeserializeOwned>(
    keys: &[Key],
    layers: Layers,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T> {
    let mut table = match layers.file {
        Some(path) => read_file(path, keys)?,
        None => toml::Table::new(),
    };
    for k in keys.iter().filter(|k| k.kind != KeyKind::Locations) {
        let name = env_name(k.name);
        if let Some(v) = env(&name) {
            table.insert(k.name.to_string(), parse_value(&v));
        }
    }
    for pair in layers.set {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair}: write KEY=VALUE, e.g. --set top_k=10"))?;
        let (name, entry) = match name.split_once('.') {
            Some((table, entry)) => (table.trim(), Some(entry.trim())),
            None => (name.trim(), None),
        };
        let Some(k) = keys.iter().find(|k| k.name == name) else {
            let names: Vec<&str> = keys.iter().map(|k| k.name).collect();
            bail!(
                "--set {pair}: no key `{name}`; the keys are {}",
                names.join(", ")
            );
        };
        match (k.kind, entry) {
            (KeyKind::Locations, Some(entry)) => {
                let sub = table
                    .entry(name.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(sub) = sub {
                    sub.insert(entry.to_string(), toml::Value::String(value.to_string()));
                }
            }
            (KeyKind::Locations, None) => {
                bail!(
                    "--set {pair}: `{name}` is a table; set one entry: --set {name}.NAME=LOCATION"
                )
            }
            (_, Some(_)) => bail!("--set {pair}: `{name}` is not a table"),
            (_, None) => {
                table.insert(name.to_string(), parse_value(value));
            }
        }
    }
    table.extend(layers.flags);
    let what = layers.file.map_or("the settings".to_string(), |p| {
        format!("the job file {} (with its overrides)", p.display())
    });
    toml::Value::Table(table)
        .try_into()
        .with_context(|| format!("in {what}"))
}

/// The job file at `path` as a table, its relative local paths made relative to the
/// file's folder.
fn read_file(path: &Path, keys: &[Key]) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the job file {}", path.display()))?;
    let mut table = text
        .parse::<toml::Table>()
        .with_context(|| format!("in the job file {}", path.display()))?;
    let folder = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    let folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
    let resolve = |v: &mut toml::Value| {
        if let toml::Value::String(s) = v {
            if let Some(p) = relative_local(s) {
                *s = folder.join(p).to_string_lossy().into_owned();
            }
        }
    };
    for k in keys {
        let Some(v) = table.get_mut(k.name) else {
            continue;
        };
        match k.kind {
            KeyKind::Value => {}
            KeyKind::Location => resolve(v),
            KeyKind::NameOrSqlFile => {
                if v.as_str().is_some_and(|s| s.ends_with(".sql")) {
                    resolve(v)
                }
            }
            KeyKind::Locations => {
                if let toml::Value::Table(t) = v {
                    t.iter_mut().for_each(|(_, v)| resolve(v));
                }
            }
        }
    }
    Ok(table)
}

/// `s` as a relative local path, or None for an absolute path or a URL.
fn relative_local(s: &str) -> Option<PathBuf> {
    let p = Path::new(s);
    (!s.is_empty() && !s.contains("://") && p.is_relative()).then(|| p.to_path_buf())
}

/// A value from `--set` or the environment: an integer, a float or a boolean when it
/// parses as one, else the text (without surrounding quotes).
pub fn parse_value(text: &str) -> toml::Value {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = t.parse::<f64>() {
        if t.chars().any(|c| c.is_ascii_digit()) {
            return toml::Value::Float(f);
        }
    }
    match t {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    let unquoted = t
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t);
    toml::Value::String(unquoted.to_string())
}

/// Checks that `keys` are exactly the keys `T` accepts: each is known to `T`, and every
/// field `T` names in its unknown-field error is listed. For the tests of each job type.
pub fn check_keys<T: DeserializeOwned + std::fmt::Debug>(keys: &[Key]) -> Result<()> {
    let mut bogus = toml::Table::new();
    bogus.insert("__no_such_key__".into(), toml::Value::Integer(0));
    let err = match toml::Value::Table(bogus).try_into::<T>() {
        Ok(v) => bail!("{v:?} accepts any key: it must deny unknown fields"),
        Err(e) => e.to_string(),
    };
    let listed: Vec<&str> = keys.iter().map(|k| k.name).collect();
    let expected: Vec<String> = err
        .split('`')
        .skip(3)
        .step_by(2)
        .map(str::to_string)
        .collect();
    for field in &expected {
        if !listed.contains(&field.as_str()) {
            bail!("the type reads `{field}` but the key list lacks it ({err})");
        }
    }
    for k in keys {
        if !expected.iter().any(|f| f == k.name) {
            bail!(
                "`{}` is listed but the type does not read it ({err})",
                k.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Job {
        a: Option<i64>,
        b: Option<String>,
        data: Option<String>,
        adapter: Option<String>,
        #[serde(default)]
        tables: std::collections::BTreeMap<String, String>,
    }

    const KEYS: &[Key] = &[
        key("a", KeyKind::Value),
        key("b", KeyKind::Value),
        key("data", KeyKind::Location),
        key("adapter", KeyKind::NameOrSqlFile),
        key("tables", KeyKind::Locations),
    ];

    fn with_env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        move |name| map.get(name).map(|v| v.to_string())
    }

    #[test]
    fn flags_beat_set_which_beats_the_environment_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.toml");
        std::fs::write(&path, "a = 1\nb = \"file\"\n").unwrap();
        let load = |set: &[String], flags: toml::Table, env: &[(&str, &str)]| -> Job {
            let layers = Layers {
                file: Some(&path),
                set,
                flags,
            };
            load_with_env(KEYS, layers, &with_env(env)).unwrap()
        };
        let none = load(&[], toml::Table::new(), &[]);
        assert_eq!((none.a, none.b.as_deref()), (Some(1), Some("file")));
        let env = load(
            &[],
            toml::Table::new(),
            &[("DUMN_A", "2"), ("DUMN_B", "env")],
        );
        assert_eq!((env.a, env.b.as_deref()), (Some(2), Some("env")));
        let set = load(
            &["a=3".into()],
            toml::Table::new(),
            &[("DUMN_A", "2"), ("DUMN_B", "env")],
        );
        assert_eq!((set.a, set.b.as_deref()), (Some(3), Some("env")));
        let mut flags = toml::Table::new();
        flags.insert("a".into(), toml::Value::Integer(4));
        let flag = load(&["a=3".into()], flags, &[("DUMN_A", "2")]);
        assert_eq!(flag.a, Some(4));
    }

    #[test]
    fn relative_paths_in_the_file_are_read_from_its_folder_and_others_from_the_working_one() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("jobs");
        std::fs::create_dir(&jobs).unwrap();
        let path = jobs.join("job.toml");
        std::fs::write(
            &path,
            "data = \"../logs\"\nadapter = \"mine.sql\"\nb = \"x/y\"\n\
             [tables]\ncandidates = \"c/\"\nremote = \"s3://bucket/c/\"\n",
        )
        .unwrap();
        let layers = Layers {
            file: Some(&path),
            ..Default::default()
        };
        let job: Job = load_with_env(KEYS, layers, &with_env(&[])).unwrap();
        let folder = std::fs::canonicalize(&jobs).unwrap();
        assert_eq!(job.data, Some(folder.join("../logs").display().to_string()));
        assert_eq!(
            job.adapter,
            Some(folder.join("mine.sql").display().to_string())
        );
        assert_eq!(
            job.b.as_deref(),
            Some("x/y"),
            "plain values stay as written"
        );
        assert_eq!(
            job.tables["candidates"],
            folder.join("c/").display().to_string()
        );
        assert_eq!(job.tables["remote"], "s3://bucket/c/");
        // An adapter's name is not a path; a flag's path is the working folder's.
        std::fs::write(&path, "adapter = \"kuairand\"\n").unwrap();
        let set = ["data=logs".to_string(), "tables.candidates=c2/".to_string()];
        let layers = Layers {
            file: Some(&path),
            set: &set,
            ..Default::default()
        };
        let job: Job = load_with_env(KEYS, layers, &with_env(&[])).unwrap();
        assert_eq!(job.adapter.as_deref(), Some("kuairand"));
        assert_eq!(job.data.as_deref(), Some("logs"));
        assert_eq!(job.tables["candidates"], "c2/");
    }

    #[test]
    fn unknown_keys_and_malformed_overrides_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.toml");
        std::fs::write(&path, "a = 1\nc = 2\n").unwrap();
        let layers = Layers {
            file: Some(&path),
            ..Default::default()
        };
        let err = format!(
            "{:#}",
            load_with_env::<Job>(KEYS, layers, &with_env(&[])).unwrap_err()
        );
        assert!(err.contains("job.toml") && err.contains('c'), "{err}");
        for (set, says) in [
            ("c=1", "no key `c`"),
            ("a", "KEY=VALUE"),
            ("tables=x", "set one entry"),
            ("a.b=1", "not a table"),
        ] {
            let set = [set.to_string()];
            let layers = Layers {
                set: &set,
                ..Default::default()
            };
            let err = format!(
                "{:#}",
                load_with_env::<Job>(KEYS, layers, &with_env(&[])).unwrap_err()
            );
            assert!(err.contains(says), "{set:?}: {err}");
        }
    }

    #[test]
    fn values_from_text_take_the_type_they_spell() {
        assert_eq!(parse_value("10"), toml::Value::Integer(10));
        assert_eq!(parse_value("0.25"), toml::Value::Float(0.25));
        assert_eq!(parse_value("true"), toml::Value::Boolean(true));
        assert_eq!(
            parse_value("2026-11-15"),
            toml::Value::String("2026-11-15".into())
        );
        assert_eq!(parse_value("\"42\""), toml::Value::String("42".into()));
        assert_eq!(parse_value("inf"), toml::Value::String("inf".into()));
    }

    #[test]
    fn the_key_list_check_finds_missing_and_extra_keys() {
        check_keys::<Job>(KEYS).unwrap();
        assert!(check_keys::<Job>(&KEYS[1..]).is_err());
        let mut more = KEYS.to_vec();
        more.push(key("z", KeyKind::Value));
        assert!(check_keys::<Job>(&more).is_err());
    }
}
