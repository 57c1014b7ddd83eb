//! Publishing a written folder so that readers never see half of it.
//!
//! Contract: outputs are written under a staging folder beside the target
//! ([`staging_for`]) and published with [`publish`]: on a local disk by renaming the
//! folder (atomic); on S3 by copying the objects in and then deleting the staging
//! objects, with the `_SUCCESS` marker written last, so a reader that checks the marker
//! never reads a partial output. Two runs that write the same target must not overlap.

use std::path::PathBuf;

use super::failure::{Failure, MarkFailure};
use anyhow::{bail, Context, Result};
use object_store::path::Path as ObjPath;
use object_store::ObjectStoreExt;

use super::location::{list, put, remove_all, Location};

/// The name of the marker file written last into a published folder.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// Checks that `target` can be written before any long work, by writing (and deleting) a
/// probe object in its parent folder, which is created when missing.
pub async fn check_writable(target: &Location) -> Result<()> {
    writable(target).await.failure(Failure::BadInput)
}

async fn writable(target: &Location) -> Result<()> {
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
    let stale = format!(".{}.staging-", staging_name(target));
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

/// The target's name as staging folders spell it: without `=`, which readers of a table
/// root take for a partition folder (`dt=D` → `dt_D`).
fn staging_name(target: &Location) -> String {
    target.file_name().replace('=', "_")
}

/// A fresh staging folder beside `target`: `.<name>.staging-<pid>-<nanos>`, with no `=` in
/// it. Writers fill it, then [`publish`] moves it into place.
pub fn staging_for(target: &Location) -> Result<Location> {
    let parent = target
        .parent()
        .with_context(|| format!("{target} has no parent folder to stage the output in"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    Ok(parent.join(&format!(
        ".{}.staging-{}-{nanos}",
        staging_name(target),
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

/// Publishes the files of the local folder `local` (no sub-folders) at `target`: uploaded
/// into a staging folder beside it ([`staging_for`]), then [`publish`]ed with `marker`.
pub async fn upload(local: &std::path::Path, target: &Location, marker: &[u8]) -> Result<()> {
    let staging = staging_for(target)?;
    for entry in std::fs::read_dir(local)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        put(&staging.join(&name), std::fs::read(entry.path())?).await?;
    }
    publish(&staging, target, marker).await
}

fn child(prefix: &ObjPath, rel: &str) -> ObjPath {
    rel.split('/').fold(prefix.clone(), |p, part| p.join(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_sits_beside_the_target() {
        let local = Location::parse("/tmp/o").unwrap();
        let staging = staging_for(&local).unwrap();
        assert_eq!(staging.parent().unwrap(), Location::parse("/tmp").unwrap());
        assert!(staging.file_name().starts_with(".o.staging-"));
    }
}
