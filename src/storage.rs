//! Where data lives: local paths, `file://` and `s3://` locations, one object store per
//! bucket, and publishing a written folder so that readers never see half of it.
//!
//! Contract:
//! - a [`Location`] is a folder (a prefix) or a single file, named by a local path, a
//!   `file://` URL or an `s3://bucket/prefix` URL;
//! - S3 is configured the standard way, from the environment: `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (default `us-east-1`), `AWS_ENDPOINT`,
//!   `AWS_ALLOW_HTTP=true` for an `http://` endpoint. A DataFusion session resolves
//!   `s3://` URLs through [`Stores`], which configures each bucket's store on first use;
//! - outputs are written under a staging folder beside the target and published with
//!   [`publish`]: on a local disk by renaming the folder (atomic); on S3 by copying the
//!   objects in and then deleting the staging objects, with the `_SUCCESS` marker written
//!   last, so a reader that checks the marker never reads a partial output.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use url::Url;

/// The name of the marker file written last into a published folder.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// A local or `s3://` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An absolute local path.
    Local(PathBuf),
    /// A bucket and a key prefix (no leading or trailing `/`).
    S3 { bucket: String, key: String },
}

impl Location {
    /// Parses a local path (relative paths are made absolute), a `file://` URL or an
    /// `s3://bucket/prefix` URL. Other schemes are an error that lists the accepted ones.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            bail!("an empty location; give a local path, file:///path or s3://bucket/prefix");
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("`{s}` names no bucket; write s3://bucket/prefix");
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                key: key.trim_matches('/').to_string(),
            });
        }
        if s.starts_with("file://") {
            let url = Url::parse(s).with_context(|| format!("`{s}` is not a valid file:// URL"))?;
            let path = url
                .to_file_path()
                .map_err(|_| anyhow::anyhow!("`{s}` is not a local file:// URL"))?;
            return Ok(Location::Local(path));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            bail!("`{s}`: the `{scheme}://` scheme is not supported; use a local path, file:// or s3://");
        }
        let path = FsPath::new(s);
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()?.join(path)
        };
        Ok(Location::Local(normalize(&abs)))
    }

    /// A child location: `self/name`.
    pub fn join(&self, name: &str) -> Location {
        let name = name.trim_matches('/');
        match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: if key.is_empty() {
                    name.to_string()
                } else {
                    format!("{key}/{name}")
                },
            },
        }
    }

    /// The last path segment (`scores` for `s3://b/x/scores`).
    pub fn file_name(&self) -> String {
        match self {
            Location::Local(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or_default().to_string(),
        }
    }

    /// The folder holding this location, or `None` at a bucket or filesystem root.
    pub fn parent(&self) -> Option<Location> {
        match self {
            Location::Local(p) => p.parent().map(|p| Location::Local(p.to_path_buf())),
            Location::S3 { bucket, key } if !key.is_empty() => Some(Location::S3 {
                bucket: bucket.clone(),
                key: key
                    .rsplit_once('/')
                    .map(|(k, _)| k)
                    .unwrap_or("")
                    .to_string(),
            }),
            Location::S3 { .. } => None,
        }
    }

    /// The URL DataFusion reads, as a folder (with a trailing `/`) when `dir`.
    pub fn url(&self, dir: bool) -> String {
        let slash = if dir { "/" } else { "" };
        match self {
            Location::Local(p) => {
                let p = p.to_string_lossy();
                format!("file://{}{slash}", p.trim_end_matches('/'))
            }
            Location::S3 { bucket, key } if key.is_empty() => format!("s3://{bucket}/"),
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}{slash}"),
        }
    }

    /// The object store serving this location and the key of the location inside it.
    pub fn store(&self) -> Result<(Arc<dyn ObjectStore>, ObjPath)> {
        match self {
            Location::Local(p) => Ok((
                Arc::new(LocalFileSystem::new()),
                ObjPath::from_absolute_path(p)
                    .with_context(|| format!("{} is not a usable path", p.display()))?,
            )),
            Location::S3 { bucket, key } => Ok((s3_store(bucket)?, ObjPath::from(key.as_str()))),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local(_))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { .. } => write!(f, "{}", self.url(false)),
        }
    }
}

/// Removes `.` and `..` components without touching the filesystem.
fn normalize(p: &FsPath) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// An S3 store for `bucket`, configured from the standard `AWS_*` environment variables.
/// Requests are retried a bounded number of times (3, within 30 s) so that an unreachable
/// server fails a job instead of hanging it.
pub fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let store = builder.with_retry(retry).build().with_context(|| {
        format!("configuring S3 for bucket `{bucket}` from the AWS_* variables")
    })?;
    Ok(Arc::new(store))
}

/// The object stores of a DataFusion session: local files, and one S3 store per bucket,
/// configured with [`s3_store`] the first time a URL names the bucket. Every dumn session
/// uses it (each subcommand's, and a cluster's scheduler and executors), so no step has to
/// register a bucket before its SQL reads or writes it.
#[derive(Debug, Default)]
pub struct Stores {
    known: DefaultObjectStoreRegistry,
}

impl Stores {
    /// A registry for a session's `RuntimeEnv`.
    pub fn registry() -> Arc<dyn ObjectStoreRegistry> {
        Arc::new(Stores::default())
    }
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) => {
                let store = s3_store(bucket)
                    .map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
                self.known.register_store(url, store.clone());
                Ok(store)
            }
            _ => self.known.get_store(url),
        }
    }
}

/// Every object under the folder `loc`, as (key relative to `loc`, size), sorted by key.
/// A local folder that does not exist lists as empty.
pub async fn list(loc: &Location) -> Result<Vec<(String, u64)>> {
    let (store, prefix) = loc.store()?;
    if let Location::Local(p) = loc {
        if !p.exists() {
            return Ok(Vec::new());
        }
    }
    let metas: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .with_context(|| format!("listing {loc}"))?;
    let skip = prefix.parts().count();
    let mut out: Vec<(String, u64)> = metas
        .into_iter()
        .map(|m| {
            let rel: Vec<_> = m
                .location
                .parts()
                .skip(skip)
                .map(|p| p.as_ref().to_string())
                .collect();
            (rel.join("/"), m.size)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Writes a small object (a marker, a manifest) in one atomic put.
pub async fn put(loc: &Location, bytes: Vec<u8>) -> Result<()> {
    let (store, path) = loc.store()?;
    if let Location::Local(p) = loc {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .with_context(|| format!("writing {loc}"))?;
    Ok(())
}

/// Reads a whole object.
pub async fn get(loc: &Location) -> Result<Vec<u8>> {
    let (store, path) = loc.store()?;
    let bytes = store
        .get(&path)
        .await
        .with_context(|| format!("reading {loc}"))?
        .bytes()
        .await
        .with_context(|| format!("reading {loc}"))?;
    Ok(bytes.to_vec())
}

/// Deletes every object under the folder `loc` (nothing if it does not exist).
pub async fn remove_all(loc: &Location) -> Result<()> {
    match loc {
        Location::Local(p) => {
            if p.exists() {
                std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        Location::S3 { .. } => {
            let (store, prefix) = loc.store()?;
            let metas: Vec<_> = store
                .list(Some(&prefix))
                .try_collect()
                .await
                .with_context(|| format!("listing {loc}"))?;
            for m in metas {
                store
                    .delete(&m.location)
                    .await
                    .with_context(|| format!("deleting {} under {loc}", m.location))?;
            }
        }
    }
    Ok(())
}

/// Checks that `target` can be written before any long work, by writing (and deleting) a
/// probe object in its parent folder, which is created when missing.
pub async fn check_writable(target: &Location) -> Result<()> {
    let parent = target.parent().unwrap_or_else(|| target.clone());
    match &parent {
        Location::Local(p) => std::fs::create_dir_all(p)
            .with_context(|| format!("cannot create {} to write {target} into", p.display()))?,
        Location::S3 { bucket, .. } => {
            // Listing fails on a bucket that does not exist (some servers accept a PUT
            // into one) and on credentials that are refused.
            let (store, prefix) = parent.store()?;
            store
                .list_with_delimiter(Some(&prefix))
                .await
                .with_context(|| {
                    format!(
                        "cannot write {target}: listing {parent} failed (does the bucket \
                     `{bucket}` exist, and do the AWS_* credentials give access to it?)"
                    )
                })?;
        }
    }
    let probe = parent.join(&format!(".dumn-write-probe-{}", std::process::id()));
    put(&probe, Vec::new())
        .await
        .with_context(|| format!("cannot write {target}: {parent} is not writable"))?;
    let (store, key) = probe.store()?;
    let _ = store.delete(&key).await;
    Ok(())
}

/// Removes what earlier runs that failed or were killed left beside `target`: their
/// staging folders (see [`staging_for`]) and a previous output moved aside but not yet
/// deleted. Call it before staging a new output for `target`; two runs that write the same
/// target at the same time would remove each other's staging folder.
pub async fn remove_stale_staging(target: &Location) -> Result<()> {
    let Some(parent) = target.parent() else {
        return Ok(());
    };
    let stale = format!(".{}.staging-", target.file_name());
    let names: Vec<String> = match &parent {
        Location::Local(p) => match std::fs::read_dir(p) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        },
        Location::S3 { .. } => {
            let (store, prefix) = parent.store()?;
            let listing = store
                .list_with_delimiter(Some(&prefix))
                .await
                .with_context(|| format!("listing {parent}"))?;
            listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect()
        }
    };
    for name in names.into_iter().filter(|n| n.starts_with(&stale)) {
        let loc = parent.join(&name);
        tracing::info!("removing {loc}, left by an earlier run");
        remove_all(&loc).await?;
    }
    Ok(())
}

/// A fresh staging folder beside `target`: `.<name>.staging-<pid>-<nanos>`. Writers fill it,
/// then [`publish`] moves it into place.
pub fn staging_for(target: &Location) -> Result<Location> {
    let parent = target
        .parent()
        .with_context(|| format!("{target} has no parent folder to stage the output in"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    Ok(parent.join(&format!(
        ".{}.staging-{}-{nanos}",
        target.file_name(),
        std::process::id()
    )))
}

/// Replaces the folder `target` with the folder `staging`, then writes `marker` into it as
/// [`SUCCESS_MARKER`]. Locally the swap is two renames; on S3 the old objects are deleted,
/// the staged objects copied in and the marker written last.
pub async fn publish(staging: &Location, target: &Location, marker: &[u8]) -> Result<()> {
    match (staging, target) {
        (Location::Local(from), Location::Local(to)) => {
            std::fs::write(from.join(SUCCESS_MARKER), marker)
                .with_context(|| format!("writing the marker in {}", from.display()))?;
            if to.exists() {
                let old = PathBuf::from(format!("{}.replaced", from.display()));
                std::fs::rename(to, &old)
                    .with_context(|| format!("moving the previous {} aside", to.display()))?;
                std::fs::rename(from, to)
                    .with_context(|| format!("publishing {}", to.display()))?;
                std::fs::remove_dir_all(&old)
                    .with_context(|| format!("removing the previous output {}", old.display()))?;
            } else {
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                std::fs::rename(from, to)
                    .with_context(|| format!("publishing {}", to.display()))?;
            }
            Ok(())
        }
        (Location::S3 { .. }, Location::S3 { .. }) => {
            remove_all(target).await?;
            let (store, to_prefix) = target.store()?;
            let (_, from_prefix) = staging.store()?;
            for (rel, _) in list(staging).await? {
                let from = child(&from_prefix, &rel);
                let to = child(&to_prefix, &rel);
                store
                    .copy(&from, &to)
                    .await
                    .with_context(|| format!("copying {rel} into {target}"))?;
            }
            remove_all(staging).await?;
            put(&target.join(SUCCESS_MARKER), marker.to_vec()).await
        }
        _ => bail!("staging {staging} and target {target} are on different stores"),
    }
}

fn child(prefix: &ObjPath, rel: &str) -> ObjPath {
    rel.split('/').fold(prefix.clone(), |p, part| p.join(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            Location::parse("s3://b/raw/logs/").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "raw/logs".into()
            }
        );
        assert_eq!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::Local("/tmp/x".into())
        );
        assert_eq!(
            Location::parse("/tmp/a/../b/./c").unwrap(),
            Location::Local("/tmp/b/c".into())
        );
        assert!(Location::parse("gs://b/x")
            .unwrap_err()
            .to_string()
            .contains("gs://"));
        assert!(Location::parse("s3:///x").is_err());
    }

    #[test]
    fn urls_joins_and_parents() {
        let s3 = Location::parse("s3://b/out").unwrap();
        assert_eq!(s3.url(true), "s3://b/out/");
        assert_eq!(s3.join("scores").url(false), "s3://b/out/scores");
        assert_eq!(s3.join("x").parent().unwrap(), s3);
        assert_eq!(s3.file_name(), "out");
        let local = Location::parse("/tmp/o").unwrap();
        assert_eq!(local.url(true), "file:///tmp/o/");
        let staging = staging_for(&local).unwrap();
        assert_eq!(staging.parent().unwrap(), Location::parse("/tmp").unwrap());
        assert!(staging.file_name().starts_with(".o.staging-"));
    }
}
