//! Checks on an output location before any work, so that a mistyped `out` cannot write
//! into (or replace) someone's data:
//! - [`check_apart`]: the output must not equal, contain or lie inside an input;
//! - [`check_ours`]: an existing output folder must hold only what dumn writes there.
//!
//! Both fail with [`Failure::BadInput`] and name the paths.

use anyhow::{anyhow, Context, Result};

use super::failure::{Failure, MarkFailure};
use super::location::Location;

/// Whether `inner` is `outer` or lies inside it.
fn within(inner: &Location, outer: &Location) -> bool {
    match (inner, outer) {
        (Location::Local(i), Location::Local(o)) => i.starts_with(o),
        (
            Location::S3 {
                bucket: bi,
                key: ki,
            },
            Location::S3 {
                bucket: bo,
                key: ko,
            },
        ) => {
            bi == bo
                && (ko.is_empty()
                    || ki == ko
                    || ki
                        .strip_prefix(ko.as_str())
                        .is_some_and(|r| r.starts_with('/')))
        }
        _ => false,
    }
}

/// Fails when `out` equals, contains or lies inside one of `inputs` (each named, e.g.
/// `data` or `tables.candidates`).
pub fn check_apart(out: &Location, inputs: &[(String, Location)]) -> Result<()> {
    for (name, input) in inputs {
        let how = if out == input {
            "is"
        } else if within(input, out) {
            "contains"
        } else if within(out, input) {
            "lies inside"
        } else {
            continue;
        };
        return Err(anyhow!(
            "the output {out} {how} the input `{name}` ({input}): writing there could replace \
             the input; give the output its own folder"
        ))
        .failure(Failure::BadInput);
    }
    Ok(())
}

/// The names at the top of the output folder `loc` (files and sub-folders); empty when
/// it does not exist.
pub async fn top_names(loc: &Location) -> Result<Vec<String>> {
    match loc {
        Location::Local(p) => match std::fs::read_dir(p) {
            Ok(entries) => Ok(entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                Err(anyhow!("the output {loc} is a file, not a folder")).failure(Failure::BadInput)
            }
            Err(e) => Err(e).with_context(|| format!("listing {loc}")),
        },
        Location::S3 { bucket, .. } => {
            let (store, prefix) = loc.store()?;
            let listing = store
                .list_with_delimiter(Some(&prefix))
                .await
                .with_context(|| {
                    format!(
                        "cannot write {loc}: listing it failed (does the bucket `{bucket}` \
                         exist, and do the AWS_* credentials give access to it?)"
                    )
                })?;
            Ok(listing
                .common_prefixes
                .iter()
                .chain(listing.objects.iter().map(|o| &o.location))
                .filter_map(|p| p.filename().map(str::to_string))
                .collect())
        }
    }
}

/// Fails when the folder `out` holds a visible name that `ours` does not accept (for a
/// table root: its `dt=…` partitions and markers), naming it; `what` says what `out` is.
/// Hidden names (`.…`) are not checked. Returns the folder's top names (see
/// [`top_names`]).
pub async fn check_ours(
    out: &Location,
    ours: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>> {
    let names = top_names(out).await?;
    let strange: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with('.') && !ours(n))
        .collect();
    if strange.is_empty() {
        return Ok(names);
    }
    let some: Vec<&str> = strange.iter().take(3).map(|s| s.as_str()).collect();
    Err(anyhow!(
        "the output {out} holds other files ({}{}), so it is not {what}: move them, or give \
         the job another output folder",
        some.join(", "),
        if strange.len() > 3 { ", …" } else { "" },
    ))
    .failure(Failure::BadInput)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> Location {
        Location::parse(s).unwrap()
    }

    #[test]
    fn overlapping_locations_are_found_both_ways_and_at_folder_boundaries() {
        let data = vec![("data".to_string(), loc("/srv/logs"))];
        for (out, how) in [
            ("/srv/logs", "is"),
            ("/srv", "contains"),
            ("/srv/logs/out", "lies inside"),
        ] {
            let err = format!("{:#}", check_apart(&loc(out), &data).unwrap_err());
            assert!(err.contains(how) && err.contains("`data`"), "{out}: {err}");
        }
        check_apart(&loc("/srv/logs2"), &data).unwrap();
        let s3 = vec![("tables.candidates".to_string(), loc("s3://b/raw/cands"))];
        assert!(check_apart(&loc("s3://b/raw"), &s3).is_err());
        assert!(check_apart(&loc("s3://b"), &s3).is_err());
        check_apart(&loc("s3://b/raw2"), &s3).unwrap();
        check_apart(&loc("s3://c/raw"), &s3).unwrap();
        check_apart(&loc("/srv/logs"), &s3).unwrap();
    }
}
