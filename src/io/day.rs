//! Publishing one day of several plain Parquet tables together (a scoring run's `scores`
//! and `ranking`), so that no version of the day is ever lost, on a local disk or on S3,
//! and a reader that follows the `_SUCCESS` markers always gets tables of one run.
//!
//! Layout, for run R of day D under the output root OUT:
//!
//! ```text
//! OUT/_staging/D/R/TABLE/part-NNNNN.parquet what the run wrote, outside every table root
//! OUT/_staging/D/R/journal.json             the plan: each table's files and marker
//! OUT/TABLE/dt=D/part-R-NNNNN.parquet       published files, named by run (never reused)
//! OUT/TABLE/dt=D/_SUCCESS                   the marker: run_id, files, rows, …, previous
//! ```
//!
//! Protocol ([`publish`]), each step durable before the next:
//! 1. the journal is written (it holds every target file name and every marker);
//! 2. the staged files are moved (local rename) or copied (S3) to their run-unique names
//!    beside the day's current files, which stay;
//! 3. each table's marker is written, listing exactly its new files and, as `previous`,
//!    the run and files of the marker it replaces;
//! 4. the day's files that the new markers do not list are deleted;
//! 5. the staging folder and its journal are removed.
//!
//! A reader that honours the markers reads the files a marker lists. Until step 3 every
//! marker names the previous run; after it, the new one. A kill between two markers of
//! step 3 leaves markers of two runs: the newer marker's `previous` names the older run,
//! whose files are still there (step 4 has not run), so a reader that finds two run ids
//! reads the newer table's `previous` files and gets both tables of the older run
//! (`docs/nightly-job.md`). A reader that lists the folder and ignores the marker may see
//! both runs' files between steps 2 and 4.
//!
//! Recovery ([`recover`]), at the start of the next run of the day (which holds the day's
//! lease): a journal whose markers were all written is finished (steps 4-5); one whose
//! files were all placed gets its missing markers written, then finished; otherwise its
//! placed files are deleted (no marker lists them) and it is dropped. Staging folders
//! without a journal are removed. Nothing a marker lists is ever deleted before a newer
//! marker of that table is written.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::location::{self, Location};
use super::publish::SUCCESS_MARKER;

/// The folder of the day `date` in table `table` under `out`.
pub fn day_folder(out: &Location, table: &str, date: &str) -> Location {
    out.join(table).join(&format!("dt={date}"))
}

/// The staging folder of run `run` of day `date` under `out` (outside every table root,
/// no `=`; each day's runs in their own folder, which only the holder of the day's lease
/// touches).
pub fn staging_root(out: &Location, date: &str, run: &str) -> Location {
    out.join("_staging").join(date).join(run)
}

/// One table's part of a publish: its staged folder and the marker's own fields.
pub struct TableDay {
    pub table: String,
    /// The staged folder (under [`staging_root`]) with the table's Parquet files.
    pub staged: Location,
    /// Fields of the marker (rows, columns, model version, …) besides those this module
    /// adds (`run_id`, `date`, `files`, `previous`).
    pub marker: serde_json::Map<String, Value>,
}

/// The journal of a publish.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    run_id: String,
    date: String,
    tables: Vec<JournalTable>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalTable {
    table: String,
    /// Staged file name → published file name.
    files: BTreeMap<String, String>,
    marker: Value,
}

/// A test hook: `DUMN_FAILPOINT=NAME` aborts the process at the named step, as a kill
/// would (no cleanup runs). The names: `journal`, `placed`, `marker-1` (after the first
/// marker), `markers`, `cleaned`; and for Delta tables ([`super::delta::publish_day`])
/// `before-commit-1` (the tables staged, nothing committed), `commit-1` (after the first
/// table's commit), `commits`, and `snapshot` (in each commit, the table's version read,
/// its commit not yet made). `DUMN_FAILPOINT=pause:NAME` instead says `paused` on
/// stderr and waits 5 seconds there (a test stops a server meanwhile).
pub fn failpoint(name: &str) {
    match std::env::var("DUMN_FAILPOINT") {
        Ok(v) if v == name => {
            eprintln!("DUMN_FAILPOINT={name}: aborting");
            std::process::abort();
        }
        Ok(v) if v.strip_prefix("pause:") == Some(name) => {
            eprintln!("DUMN_FAILPOINT={v}: paused");
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        _ => {}
    }
}

/// Publishes `tables` for day `date` under `out` as run `run` (see the module docs).
/// Returns each table's published file names.
pub async fn publish(
    out: &Location,
    date: &str,
    run: &str,
    tables: Vec<TableDay>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut journal = Journal {
        run_id: run.to_string(),
        date: date.to_string(),
        tables: Vec::new(),
    };
    for t in &tables {
        let staged: Vec<String> = location::list(&t.staged)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| n.ends_with(".parquet") && !n.contains('/'))
            .collect();
        let files: BTreeMap<String, String> = staged
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), format!("part-{run}-{i:05}.parquet")))
            .collect();
        let mut marker = t.marker.clone();
        marker.insert("run_id".into(), run.into());
        marker.insert("date".into(), date.into());
        marker.insert(
            "files".into(),
            files.values().cloned().collect::<Vec<_>>().into(),
        );
        journal.tables.push(JournalTable {
            table: t.table.clone(),
            files,
            marker: Value::Object(marker),
        });
    }
    let root = staging_root(out, date, run);
    location::put(
        &root.join("journal.json"),
        serde_json::to_vec_pretty(&journal)?,
    )
    .await?;
    failpoint("journal");
    for (t, jt) in tables.iter().zip(&journal.tables) {
        let day = day_folder(out, &t.table, date);
        for (from, to) in &jt.files {
            place(&t.staged.join(from), &day.join(to)).await?;
        }
    }
    failpoint("placed");
    finish(out, &journal).await
}

/// Steps 3-5 for a journal whose files are all placed.
async fn finish(out: &Location, journal: &Journal) -> Result<BTreeMap<String, Vec<String>>> {
    let mut published = BTreeMap::new();
    for (i, jt) in journal.tables.iter().enumerate() {
        let day = day_folder(out, &jt.table, &journal.date);
        let current = read_marker(&day).await?;
        let already = current
            .as_ref()
            .is_some_and(|m| m["run_id"] == journal.run_id.as_str());
        if !already {
            let mut marker = jt.marker.clone();
            if let (Some(m), Some(prev)) = (marker.as_object_mut(), &current) {
                m.insert(
                    "previous".into(),
                    serde_json::json!({
                        "run_id": prev.get("run_id").cloned().unwrap_or(Value::Null),
                        "files": listed_files(&day, prev).await?,
                    }),
                );
            }
            location::put(
                &day.join(SUCCESS_MARKER),
                serde_json::to_vec_pretty(&marker)?,
            )
            .await?;
        }
        if i == 0 {
            failpoint("marker-1");
        }
        published.insert(jt.table.clone(), jt.files.values().cloned().collect());
    }
    failpoint("markers");
    for jt in &journal.tables {
        let day = day_folder(out, &jt.table, &journal.date);
        let keep: BTreeSet<&String> = jt.files.values().collect();
        for (name, _) in location::list(&day).await? {
            if name != SUCCESS_MARKER && !name.contains('/') && !keep.contains(&name) {
                remove_object(&day.join(&name)).await?;
            }
        }
    }
    failpoint("cleaned");
    location::remove_all(&staging_root(out, &journal.date, &journal.run_id)).await?;
    Ok(published)
}

/// Finishes or rolls back what killed runs of day `date` left under `out` (see the module
/// docs). Call it while holding the day's lease, before staging anything.
pub async fn recover(out: &Location, date: &str) -> Result<()> {
    let staging = out.join("_staging").join(date);
    // The run folders of this day, empty ones included (a run killed before its first
    // file); other days' runs are theirs to recover.
    for run in super::guard::top_names(&staging).await? {
        let root = staging.join(&run);
        let journal = match location::get(&root.join("journal.json")).await {
            Ok(bytes) => serde_json::from_slice::<Journal>(&bytes)
                .with_context(|| format!("{} is not a dumn journal", root.join("journal.json")))?,
            Err(_) => {
                // Killed while staging: nothing was placed.
                tracing::info!("removing {root}, staged by a run that did not publish");
                location::remove_all(&root).await?;
                continue;
            }
        };
        if journal.date != date {
            continue;
        }
        let mut all_placed = true;
        for jt in &journal.tables {
            let day = day_folder(out, &jt.table, date);
            let present: BTreeSet<String> = location::list(&day)
                .await?
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            all_placed &= jt.files.values().all(|f| present.contains(f));
        }
        if all_placed {
            crate::io::log::warn(format_args!(
                "finishing the publish of {date} by run {run}, which was stopped before it ended"
            ));
            finish(out, &journal).await?;
        } else {
            crate::io::log::warn(format_args!(
                "rolling back the publish of {date} by run {run}, which was stopped while \
                 placing its files; the day stays as it was"
            ));
            for jt in &journal.tables {
                let day = day_folder(out, &jt.table, date);
                for f in jt.files.values() {
                    remove_object(&day.join(f)).await?;
                }
            }
            location::remove_all(&root).await?;
        }
    }
    Ok(())
}

/// The marker of a day folder, if any.
async fn read_marker(day: &Location) -> Result<Option<Value>> {
    match location::get(&day.join(SUCCESS_MARKER)).await {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is not a JSON marker", day.join(SUCCESS_MARKER))
        })?)),
        Err(_) => Ok(None),
    }
}

/// The files a marker lists; for a marker of an older dumn (no `files`), every Parquet file
/// of the day.
async fn listed_files(day: &Location, marker: &Value) -> Result<Vec<String>> {
    if let Some(files) = marker["files"].as_array() {
        return Ok(files
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect());
    }
    Ok(location::list(day)
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(".parquet") && !n.contains('/'))
        .collect())
}

/// Moves (local) or copies (S3) one file to its published name.
pub(super) async fn place(from: &Location, to: &Location) -> Result<()> {
    match (from, to) {
        (Location::Local(f), Location::Local(t)) => {
            if let Some(dir) = t.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            if !t.exists() {
                std::fs::rename(f, t)
                    .with_context(|| format!("moving {} to {}", f.display(), t.display()))?;
            }
            Ok(())
        }
        _ => {
            let (store, from_key) = from.store()?;
            let (_, to_key) = to.store()?;
            store
                .copy(&from_key, &to_key)
                .await
                .with_context(|| format!("copying {from} to {to}"))
        }
    }
}

async fn remove_object(loc: &Location) -> Result<()> {
    let (store, key) = loc.store()?;
    match store.delete(&key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {loc}")),
    }
}
