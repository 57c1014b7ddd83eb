//! Model versions and aliases: where `dumn train --out MODELS` puts each model, and how a
//! job or a command names one.
//!
//! A registry is a folder (local or `s3://`) laid out as
//!
//! ```text
//! MODELS/20261205T071500Z-ab12cd34/   one artifact per trained model (its model_version)
//! MODELS/20261206T071200Z-0f9e8d7c/
//! MODELS/latest                       an alias: {"version": "20261206T071200Z-0f9e8d7c", …}
//! MODELS/prod                         another alias (`dumn train --alias prod`)
//! ```
//!
//! A version folder is written whole before any alias names it, and is never changed
//! afterwards. An alias is one small object replaced in one step (a rename on a local disk,
//! a single PUT on S3), so a reader sees the old version or the new one, never a mixture;
//! a scoring job that reads `MODELS@latest` while training moves it scores with one model
//! or the other.
//!
//! How a model is named ([`resolve`]), everywhere a command takes a model:
//! - `MODELS@NAME`: the alias NAME of the registry, or its version NAME;
//! - `MODELS`: the registry's `latest`;
//! - `DIR`: a folder that holds `manifest.json` itself (an artifact written by `dumn
//!   ablate` or by dumn before versions existed; `MODELS/VERSION` is one too).

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::artifact::{self, Artifact, Manifest, MANIFEST_FILE};
use crate::io::location::{self, Location};
use crate::io::publish;

/// The alias `dumn train` moves unless told another, and the one a bare registry means.
pub const DEFAULT_ALIAS: &str = "latest";

/// The content of an alias file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    /// The version folder the alias names.
    pub version: String,
    /// When the alias was last moved.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// One version of a registry, as `dumn models list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub version: String,
    /// The aliases that name it.
    pub aliases: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The metrics its training recorded (valid and test AUC, GAUC, logloss).
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// A registry folder.
#[derive(Debug, Clone)]
pub struct Registry {
    root: Location,
}

/// Checks an alias name: letters, digits, `_`, `-` and `.`, not starting with `.`.
pub fn check_alias(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
        "`{name}` is not a valid alias: use letters, digits, `_`, `-` and `.` (not first)"
    );
    ensure!(
        !looks_like_version(name),
        "`{name}` is not a valid alias: it has the form of a model version"
    );
    Ok(())
}

/// Whether `name` has the form of a `model_version` (`%Y%m%dT%H%M%SZ-xxxxxxxx`).
fn looks_like_version(name: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(name.get(..16).unwrap_or(""), "%Y%m%dT%H%M%SZ").is_ok()
        && name.as_bytes().get(16) == Some(&b'-')
}

impl Registry {
    pub fn new(root: Location) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The folder of a version.
    pub fn version(&self, version: &str) -> Location {
        self.root.join(version)
    }

    /// Fails unless the folder is missing, empty or a registry already: an artifact itself
    /// (written by an older dumn or by `dumn ablate`) or a folder of other files must not
    /// be mixed into.
    pub async fn check_target(&self) -> Result<()> {
        if exists(&self.root.join(MANIFEST_FILE)).await? {
            bail!(
                "{} is a model artifact itself (it holds {MANIFEST_FILE}), not a folder of \
                 model versions: give `--out` a new folder, or move the artifact to a folder \
                 below it",
                self.root
            );
        }
        let names = crate::io::guard::top_names(&self.root).await?;
        let visible: Vec<&String> = names.iter().filter(|n| !n.starts_with('.')).collect();
        let ours = visible.is_empty()
            || visible.iter().any(|n| looks_like_version(n))
            || self.alias(DEFAULT_ALIAS).await.is_ok_and(|a| a.is_some());
        if !ours {
            let some: Vec<&str> = visible.iter().take(3).map(|s| s.as_str()).collect();
            bail!(
                "{} holds other files ({}) and no model versions: give `--out` an empty or \
                 new folder for the model versions",
                self.root,
                some.join(", ")
            );
        }
        Ok(())
    }

    /// Puts the finished artifact folder `local` in place as version `version`: a rename
    /// on a local disk (the folder must be on the same file system, as a temporary folder
    /// inside the registry is), else an upload published with a `_SUCCESS` marker.
    pub async fn add(&self, local: &Path, version: &str) -> Result<Location> {
        let target = self.version(version);
        match &target {
            Location::Local(to) => {
                ensure!(!to.exists(), "{target} exists already");
                std::fs::rename(local, to)
                    .with_context(|| format!("moving the new model into {target}"))?;
            }
            Location::S3 { .. } => {
                publish::remove_stale_staging(&target).await?;
                let marker = serde_json::json!({ "model_version": version });
                publish::upload(local, &target, &serde_json::to_vec_pretty(&marker)?).await?;
            }
        }
        Ok(target)
    }

    /// Points alias `name` at `version`, in one atomic step.
    pub async fn set_alias(&self, name: &str, version: &str) -> Result<()> {
        check_alias(name)?;
        ensure!(
            exists(&self.version(version).join(MANIFEST_FILE)).await?,
            "{} holds no model version {version}",
            self.root
        );
        let alias = Alias {
            version: version.to_string(),
            updated_at: chrono::Utc::now(),
        };
        let bytes = serde_json::to_vec_pretty(&alias)?;
        let target = self.root.join(name);
        match &target {
            // A rename over the old file: readers open the old alias or the new one.
            Location::Local(to) => {
                let dir = to.parent().context("an alias has a folder")?;
                let mut tmp = tempfile::Builder::new()
                    .prefix(&format!(".{name}.tmp-"))
                    .tempfile_in(dir)
                    .with_context(|| format!("writing the alias {target}"))?;
                std::io::Write::write_all(&mut tmp, &bytes)?;
                tmp.as_file().sync_all()?;
                tmp.persist(to)
                    .with_context(|| format!("moving the alias {target}"))?;
            }
            // One PUT replaces an object atomically.
            Location::S3 { .. } => location::put(&target, bytes).await?,
        }
        Ok(())
    }

    /// The version alias `name` names, if the alias exists.
    pub async fn alias(&self, name: &str) -> Result<Option<String>> {
        let loc = self.root.join(name);
        if !exists(&loc).await? {
            return Ok(None);
        }
        let alias: Alias = serde_json::from_slice(&location::get(&loc).await?)
            .with_context(|| format!("{loc} is not a dumn model alias"))?;
        Ok(Some(alias.version))
    }

    /// Every version, oldest first, with its aliases and metrics.
    pub async fn list(&self) -> Result<Vec<Version>> {
        let files = location::list(&self.root).await?;
        let mut aliases: Vec<(String, String)> = Vec::new();
        for (name, _) in files.iter().filter(|(n, _)| is_alias_file(n)) {
            if let Some(version) = self.alias(name).await? {
                aliases.push((name.clone(), version));
            }
        }
        let mut out = Vec::new();
        for (path, _) in &files {
            let Some(version) = path.strip_suffix(&format!("/{MANIFEST_FILE}")) else {
                continue;
            };
            if version.contains('/') || version.starts_with('.') {
                continue;
            }
            let loc = self.version(version).join(MANIFEST_FILE);
            let manifest: Manifest = serde_json::from_slice(&location::get(&loc).await?)
                .with_context(|| format!("{loc} is not a valid dumn manifest"))?;
            out.push(Version {
                version: version.to_string(),
                aliases: aliases
                    .iter()
                    .filter(|(_, v)| v == version)
                    .map(|(a, _)| a.clone())
                    .collect(),
                created_at: manifest.created_at,
                metrics: manifest.metrics,
            });
        }
        out.sort_by(|a, b| (a.created_at, &a.version).cmp(&(b.created_at, &b.version)));
        Ok(out)
    }
}

/// A top-level file of a registry that can be an alias (not hidden, not a marker).
fn is_alias_file(name: &str) -> bool {
    !name.contains('/') && !name.starts_with('.') && !name.starts_with('_')
}

/// Whether the object (a file, not a folder) `loc` exists. On S3 this lists the parent
/// folder rather than asking for the object: some servers answer a HEAD on a folder's
/// name with an error instead of "not found".
async fn exists(loc: &Location) -> Result<bool> {
    match loc {
        Location::Local(p) => Ok(p.is_file()),
        Location::S3 { .. } => {
            let Some(parent) = loc.parent() else {
                return Ok(false);
            };
            let (store, prefix) = parent.store()?;
            let (_, key) = loc.store()?;
            let listing = store
                .list_with_delimiter(Some(&prefix))
                .await
                .with_context(|| format!("listing {parent}"))?;
            Ok(listing.objects.iter().any(|o| o.location == key))
        }
    }
}

/// Splits `MODELS@NAME` into the registry and the name; `None` without an `@` after the
/// last `/`.
fn split_spec(spec: &str) -> Option<(&str, &str)> {
    let (root, name) = spec.rsplit_once('@')?;
    (!name.contains('/') && !name.is_empty() && !root.is_empty()).then_some((root, name))
}

/// The folder a model name is in, without reading it: the registry of `MODELS@NAME`, else
/// the location itself.
pub fn folder_of(spec: &str) -> Result<Location> {
    Location::parse(split_spec(spec).map_or(spec, |(root, _)| root))
}

/// The artifact folder a model name means (see the module docs): `MODELS@NAME`, `MODELS`
/// (its `latest`), or an artifact folder.
pub async fn resolve(spec: &str) -> Result<Location> {
    if let Some((root, name)) = split_spec(spec) {
        let registry = Registry::new(Location::parse(root)?);
        if let Some(version) = registry.alias(name).await? {
            return Ok(registry.version(&version));
        }
        let fixed = registry.version(name);
        if exists(&fixed.join(MANIFEST_FILE)).await? {
            return Ok(fixed);
        }
        let known = registry.list().await.unwrap_or_default();
        let mut names: Vec<String> = known.iter().flat_map(|v| v.aliases.clone()).collect();
        names.extend(known.iter().map(|v| v.version.clone()));
        bail!(
            "model {spec}: {root} has no alias or version `{name}` ({}); `dumn models list {root}` \
             shows them",
            if names.is_empty() {
                "it holds no model versions".to_string()
            } else {
                format!("it has {}", names.join(", "))
            }
        );
    }
    let loc = Location::parse(spec)?;
    if exists(&loc.join(MANIFEST_FILE)).await? {
        return Ok(loc);
    }
    let registry = Registry::new(loc.clone());
    match registry.alias(DEFAULT_ALIAS).await? {
        Some(version) => Ok(registry.version(&version)),
        // Not a registry either: the artifact's own error says what is missing.
        None => Ok(loc),
    }
}

/// Loads the model `spec` names (see [`resolve`]) onto `device`.
pub async fn open(spec: &str, device: tch::Device) -> Result<Artifact> {
    let loc = resolve(spec).await?;
    artifact::open(&loc, device).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_after_the_last_at_sign_is_an_alias_or_version() {
        assert_eq!(split_spec("models@latest"), Some(("models", "latest")));
        assert_eq!(
            split_spec("s3://b/m@20261205T071500Z-ab12cd34"),
            Some(("s3://b/m", "20261205T071500Z-ab12cd34"))
        );
        assert_eq!(split_spec("models"), None);
        assert_eq!(split_spec("/data/a@b/models"), None);
        assert_eq!(split_spec("models@"), None);
    }

    #[test]
    fn aliases_are_plain_names_that_cannot_pass_for_versions() {
        for ok in ["latest", "prod", "canary-2", "v1.2"] {
            check_alias(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "a b", "20261205T071500Z-ab12cd34"] {
            assert!(check_alias(bad).is_err(), "{bad:?} accepted");
        }
        assert!(looks_like_version("20261205T071500Z-ab12cd34"));
        assert!(!looks_like_version("latest"));
    }
}
