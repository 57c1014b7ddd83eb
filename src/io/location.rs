//! Where data lives: local paths, `file://` and `s3://` locations, and the small object
//! operations every stage needs (list, put, get, remove).
//!
//! Contract:
//! - a [`Location`] is a folder (a prefix) or a single file, named by a local path, a
//!   `file://` URL or an `s3://bucket/prefix` URL; relative local paths are made absolute
//!   against the current directory;
//! - every operation goes through the location's object store ([`Location::store`]): the
//!   local filesystem, or the bucket's S3 store from [`super::stores::s3_store`].

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use super::stores::s3_store;

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
            return Self::local(&path);
        }
        if let Some((scheme, _)) = s.split_once("://") {
            bail!("`{s}`: the `{scheme}://` scheme is not supported; use a local path, file:// or s3://");
        }
        Self::local(FsPath::new(s))
    }

    /// A local path as a location: made absolute (against the current folder) and
    /// normalised, as [`Location::Local`] requires. Build local locations from paths a
    /// user gave with this, never with `Location::Local` directly.
    pub fn local(path: &FsPath) -> Result<Self> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .context("reading the current folder, to resolve a relative path")?
                .join(path)
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

    /// The URL DataFusion reads, as a folder (with a trailing `/`) when `dir`. Characters
    /// that mean something in a URL (space, `#`, `%`, `?`, non-ASCII) are percent-encoded,
    /// so any path reads back as itself.
    pub fn url(&self, dir: bool) -> String {
        let mut url = match self {
            Location::Local(p) => Url::from_file_path(p)
                .unwrap_or_else(|()| Url::parse("file:///").expect("a valid URL")),
            Location::S3 { bucket, .. } => {
                Url::parse(&format!("s3://{bucket}/")).expect("a bucket name is a valid host")
            }
        };
        if let Location::S3 { key, .. } = self {
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty();
                segments.extend(key.split('/').filter(|s| !s.is_empty()));
            }
        }
        let mut text = url.to_string();
        if text.ends_with('/') && url.path() != "/" {
            text.pop();
        }
        if dir && !text.ends_with('/') {
            text.push('/');
        }
        text
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
            Location::S3 { bucket, key } if key.is_empty() => write!(f, "s3://{bucket}/"),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
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
        assert_eq!(
            Location::parse("file:///tmp/a/../b/./c").unwrap(),
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
        assert_eq!(Location::parse("s3://b").unwrap().url(false), "s3://b/");
    }

    #[test]
    fn urls_encode_what_a_url_would_misread_and_parse_back() {
        let odd = "/tmp/a b/it's #1/100%/ünï";
        let local = Location::parse(odd).unwrap();
        let url = local.url(false);
        assert!(!url.contains(' ') && !url.contains('#'), "{url}");
        assert_eq!(Location::parse(&url).unwrap(), local);
        assert_eq!(local.to_string(), odd);
        let s3 = Location::parse("s3://b/logs/a b#c").unwrap();
        assert_eq!(s3.url(true), "s3://b/logs/a%20b%23c/");
        assert_eq!(s3.to_string(), "s3://b/logs/a b#c");
    }
}
