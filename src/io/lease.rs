//! A lease on one output, so that two runs of the same day never write it at once: the
//! second fails fast, naming the first (exit code 3, [`Failure::Conflict`]).
//!
//! The lease is one small JSON object ([`Holder`]: run id, host, process, start, expiry)
//! at a location beside the outputs (`OUT/_leases/DATE.json` for `dumn run`; the `_`
//! hides it from readers of `OUT`). Contract:
//! - **Taking it** creates the object only if it does not exist, atomically: on a local
//!   disk with a hard link (the store's create-if-absent); on S3 with a conditional PUT
//!   (`If-None-Match: *`, which AWS S3, MinIO and R2 honour atomically; the tests' s3s-fs
//!   checks before it writes, so `ci/setup.sh` patches it to create atomically too).
//!   Whoever loses that race reads the holder and fails with its name.
//! - **Expiry.** A holder renews its lease every third of its time to live (default 10
//!   minutes, `DUMN_LEASE_SECONDS`), so a run that was killed blocks the day for at most
//!   that long; at once, when it ran on the same host and its process is gone. An expired
//!   lease is taken over atomically: on S3 by a PUT conditional on
//!   the stale object's ETag (`If-Match`), locally by renaming the stale file away (one
//!   rename wins). A holder whose renewal finds the lease taken over learns it has lost it
//!   ([`Lease::check`], called before publishing), so its outputs are not published.
//! - **Release** deletes the object when the run ends, whatever its outcome.
//!
//! A store that ignores conditional PUTs, or checks them apart from the write, would let
//! two runs in at once; use one that honours them atomically (AWS S3, MinIO, R2 do).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::failure::{Failure, MarkFailure};
use super::location::Location;

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// What the run is (for `dumn run`: the job's output and date).
    pub run: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Holder {
    fn describe(&self) -> String {
        format!(
            "{} (host {}, process {}, started {}, lease until {})",
            self.run,
            self.host,
            self.pid,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.expires_at.format("%H:%M:%S UTC")
        )
    }
}

/// A held lease; renewed in the background until [`Lease::release`].
pub struct Lease {
    loc: Location,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

/// The time to live of a lease: `DUMN_LEASE_SECONDS`, else 10 minutes.
fn time_to_live() -> Duration {
    std::env::var("DUMN_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(600), Duration::from_secs)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

impl Lease {
    /// Takes the lease at `loc` for `run`, or fails with [`Failure::Conflict`] naming the
    /// run that holds it.
    pub async fn acquire(loc: &Location, run: &str) -> Result<Lease> {
        let ttl = time_to_live();
        let now = Utc::now();
        let holder = Holder {
            run: run.to_string(),
            host: host(),
            pid: std::process::id(),
            started_at: now,
            expires_at: now + ttl,
        };
        let mut version = match create(loc, &holder).await? {
            Some(v) => v,
            None => take_over(loc, &holder).await?,
        };
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (loc, lost, mut holder) = (loc.clone(), lost.clone(), holder);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    holder.expires_at = Utc::now() + ttl;
                    match renew(&loc, &holder, &version).await {
                        Ok(v) => version = v,
                        Err(e) => {
                            tracing::warn!("lost the lease {loc}: {e:#}");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
        };
        Ok(Lease {
            loc: loc.clone(),
            lost,
            renewer,
        })
    }

    /// Fails with [`Failure::Conflict`] when the lease was lost (it expired while this run
    /// could not renew it, and another run took it over).
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(anyhow!(
                "the lease {} was taken over by another run while this one worked; \
                 nothing was published",
                self.loc
            ))
            .failure(Failure::Conflict);
        }
        Ok(())
    }

    /// Stops renewing and deletes the lease (unless it was lost to another run).
    pub async fn release(self) {
        self.renewer.abort();
        if self.lost.load(Ordering::SeqCst) {
            return;
        }
        if let Ok((store, key)) = self.loc.store() {
            if let Err(e) = store.delete(&key).await {
                tracing::warn!("could not remove the lease {}: {e}", self.loc);
            }
        }
    }
}

/// What identifies the version of the lease object this process wrote: the S3 ETag, or
/// (locally) nothing, as the holder's content is checked instead.
type Version = Option<UpdateVersion>;

fn payload(holder: &Holder) -> Result<PutPayload> {
    Ok(PutPayload::from(serde_json::to_vec_pretty(holder)?))
}

/// Creates the lease object if it does not exist: `None` when it does.
async fn create(loc: &Location, holder: &Holder) -> Result<Option<Version>> {
    let (store, key) = loc.store()?;
    if let Location::Local(p) = loc {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(&key, payload(holder)?, opts).await {
        Ok(r) => Ok(Some(match loc {
            Location::Local(_) => None,
            Location::S3 { .. } => Some(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            }),
        })),
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("taking the lease {loc}")),
    }
}

/// Reads the lease object: its holder and version; `None` when it is gone.
async fn read(loc: &Location) -> Result<Option<(Holder, Version)>> {
    let (store, key) = loc.store()?;
    let got = match store.get(&key).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading the lease {loc}")),
    };
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let bytes = got.bytes().await?;
    let holder: Holder = serde_json::from_slice(&bytes)
        .with_context(|| format!("{loc} is not a dumn lease; remove it if no run holds it"))?;
    Ok(Some((holder, Some(version))))
}

/// The lease exists: takes it over if it has expired, else fails naming its holder.
async fn take_over(loc: &Location, holder: &Holder) -> Result<Version> {
    let Some((current, version)) = read(loc).await? else {
        // Released between our attempt and this read: try once more.
        return create(loc, holder)
            .await?
            .ok_or_else(|| conflict(loc, None));
    };
    let dead = current.host == host() && !alive(current.pid);
    if current.expires_at > Utc::now() && !dead {
        return Err(conflict(loc, Some(&current)));
    }
    tracing::info!(
        "taking over the expired lease {loc} of {}",
        current.describe()
    );
    match loc {
        Location::Local(p) => {
            // One rename of the stale file wins; the others find it gone.
            let aside = p.with_extension(format!("stale-{}", std::process::id()));
            std::fs::rename(p, &aside).map_err(|_| conflict(loc, Some(&current)))?;
            let _ = std::fs::remove_file(&aside);
            create(loc, holder)
                .await?
                .ok_or_else(|| conflict(loc, Some(&current)))
        }
        Location::S3 { .. } => {
            let (store, key) = loc.store()?;
            let opts = PutOptions {
                mode: PutMode::Update(version.expect("an S3 object has an ETag")),
                ..Default::default()
            };
            match store.put_opts(&key, payload(holder)?, opts).await {
                Ok(r) => Ok(Some(UpdateVersion {
                    e_tag: r.e_tag,
                    version: r.version,
                })),
                Err(object_store::Error::Precondition { .. }) => Err(conflict(loc, Some(&current))),
                Err(e) => Err(e).with_context(|| format!("taking over the lease {loc}")),
            }
        }
    }
}

/// Rewrites our lease with a later expiry, only if it is still ours.
async fn renew(loc: &Location, holder: &Holder, version: &Version) -> Result<Version> {
    let (store, key) = loc.store()?;
    match (loc, version) {
        (Location::S3 { .. }, Some(v)) => {
            let opts = PutOptions {
                mode: PutMode::Update(v.clone()),
                ..Default::default()
            };
            let r = store.put_opts(&key, payload(holder)?, opts).await?;
            Ok(Some(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            }))
        }
        _ => {
            let ours = read(loc).await?.is_some_and(|(h, _)| {
                (h.run.as_str(), h.pid, h.started_at)
                    == (holder.run.as_str(), holder.pid, holder.started_at)
            });
            anyhow::ensure!(ours, "another run holds it now");
            store.put(&key, payload(holder)?).await?;
            Ok(None)
        }
    }
}

/// Whether process `pid` of this host is alive.
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn conflict(loc: &Location, holder: Option<&Holder>) -> anyhow::Error {
    let who = holder.map_or("another run".to_string(), Holder::describe);
    anyhow!(
        "{who} holds the lease {loc}: runs of the same output must not overlap. Retry when \
         it has ended; if that process is dead, the lease expires by itself (or remove {loc})"
    )
    .context(Failure::Conflict)
}
