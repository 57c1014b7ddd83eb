//! The model artifact: a directory holding `weights.safetensors` and `manifest.json`.
//!
//! The manifest records the model version, the full [`ModelConfig`] (hyper-parameters,
//! feature schema with column names and hash sizes, ablation switches), the creation time,
//! a fingerprint of the training data, metrics when known, and the name, shape, byte size
//! and SHA-256 of the weights. [`load`] refuses an artifact whose weights do not match the
//! manifest (truncated file, other model, missing or extra tensors) with a message that names
//! the problem. [`save`] writes into a temporary sibling directory and renames it into
//! place, so a reader never sees a half-written artifact.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Device, Tensor};

use super::features::{Lookup, Vocabulary};
use super::{Dumn, ModelConfig};
use crate::io::location::{self, Location};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Identifies the manifest format; bumped on incompatible changes.
pub const FORMAT: &str = "dumn-model/1";

/// Where the training data came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// A stable hash of the training data's identity (source, query, split, row count).
    pub fingerprint: String,
    pub rows: u64,
    /// Free text: where the data lives, which SQL built it.
    pub description: String,
}

/// The weights file's identity, as recorded at save time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsInfo {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// Tensor name → shape.
    pub tensors: BTreeMap<String, Vec<i64>>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// `<created, UTC>-<first 8 hex of the weights' SHA-256>`: unique per saved model.
    pub model_version: String,
    /// The `dumn` build that wrote it ([`crate::BUILD`]: version and git commit).
    pub dumn_version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub config: ModelConfig,
    pub training_data: Option<DataInfo>,
    /// Metric name → value (for example `test_auc`).
    pub metrics: BTreeMap<String, f64>,
    pub weights: WeightsInfo,
}

/// A loaded model and its manifest.
#[derive(Debug)]
pub struct Artifact {
    pub manifest: Manifest,
    pub model: Dumn,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Saves `model` as an artifact directory at `dir`, replacing any artifact already there.
/// Returns the manifest written.
pub fn save(
    model: &Dumn,
    dir: &Path,
    training_data: Option<DataInfo>,
    metrics: BTreeMap<String, f64>,
) -> Result<Manifest> {
    save_with_files(model, dir, training_data, metrics, &[])
}

/// [`save`], with extra files (a report, a plot) written into the artifact before it is
/// published, so they appear together with the weights or not at all.
pub fn save_with_files(
    model: &Dumn,
    dir: &Path,
    training_data: Option<DataInfo>,
    metrics: BTreeMap<String, f64>,
    files: &[(&str, Vec<u8>)],
) -> Result<Manifest> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| {
        format!(
            "cannot create the folder {} for the model artifact",
            parent.display()
        )
    })?;
    let name = dir
        .file_name()
        .context("the model path has no final component")?
        .to_string_lossy();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp)
        .with_context(|| format!("cannot write the model artifact into {}", parent.display()))?;
    let result = write_into(model, &tmp, training_data, metrics).and_then(|m| {
        for (name, bytes) in files {
            fs::write(tmp.join(name), bytes)
                .with_context(|| format!("cannot write {name} into the artifact"))?;
        }
        publish(&tmp, dir)?;
        Ok(m)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into(
    model: &Dumn,
    tmp: &Path,
    training_data: Option<DataInfo>,
    metrics: BTreeMap<String, f64>,
) -> Result<Manifest> {
    let mut named: Vec<(String, Tensor)> = model
        .var_store()
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    for f in model.config.schema.fields() {
        if let Some(v) = &f.vocabulary {
            named.push((vocabulary_tensor(&f.name), Tensor::from_slice(v.values())));
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let weights_path = tmp.join(WEIGHTS_FILE);
    Tensor::write_safetensors(&named, &weights_path)
        .with_context(|| format!("cannot write {}", weights_path.display()))?;
    let bytes = fs::read(&weights_path)?;
    let sha256 = sha256_hex(&bytes);
    let created_at = chrono::Utc::now();
    let manifest = Manifest {
        format: FORMAT.into(),
        model_version: format!("{}-{}", created_at.format("%Y%m%dT%H%M%SZ"), &sha256[..8]),
        dumn_version: crate::BUILD.into(),
        created_at,
        config: model.config.clone(),
        training_data,
        metrics,
        weights: WeightsInfo {
            file: WEIGHTS_FILE.into(),
            bytes: bytes.len() as u64,
            sha256,
            tensors: named.iter().map(|(n, t)| (n.clone(), t.size())).collect(),
        },
    };
    let manifest_path = tmp.join(MANIFEST_FILE);
    fs::write(&manifest_path, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;
    Ok(manifest)
}

/// The name of a field's vocabulary in the weights file.
fn vocabulary_tensor(field: &str) -> String {
    format!("vocabulary.{field}")
}

/// Renames `tmp` to `dir`, moving an existing `dir` aside first and deleting it after.
fn publish(tmp: &Path, dir: &Path) -> Result<()> {
    let old: Option<PathBuf> = if dir.exists() {
        let old = dir.with_file_name(format!(
            ".{}.old-{}",
            dir.file_name().unwrap().to_string_lossy(),
            std::process::id()
        ));
        fs::rename(dir, &old)
            .with_context(|| format!("cannot replace the artifact at {}", dir.display()))?;
        Some(old)
    } else {
        None
    };
    fs::rename(tmp, dir)
        .with_context(|| format!("cannot move the new artifact into {}", dir.display()))?;
    if let Some(old) = old {
        let _ = fs::remove_dir_all(old);
    }
    Ok(())
}

/// Reads and checks `manifest.json` alone.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    if !dir.exists() {
        bail!(
            "model artifact {} does not exist (check the path; `dumn train --out DIR` writes one)",
            dir.display()
        );
    }
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "model artifact {}: cannot read {MANIFEST_FILE}",
            dir.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text).with_context(|| {
        format!(
            "model artifact {}: {MANIFEST_FILE} is not a valid dumn manifest",
            dir.display()
        )
    })?;
    ensure!(
        manifest.format == FORMAT,
        "model artifact {}: format `{}` is not the `{FORMAT}` this dumn reads",
        dir.display(),
        manifest.format
    );
    let file = &manifest.weights.file;
    ensure!(
        !file.is_empty()
            && !file.contains(['/', '\\'])
            && file != "."
            && file != ".."
            && file.ends_with(".safetensors"),
        "model artifact {}: weights.file `{file}` must be the plain name of a .safetensors \
         file inside the artifact",
        dir.display()
    );
    manifest.config.validate().map_err(|e| {
        anyhow::anyhow!(
            "model artifact {}: invalid config in manifest: {e}",
            dir.display()
        )
    })?;
    Ok(manifest)
}

/// Loads the artifact at `dir` onto `device`, checking the weights against the manifest.
pub fn load(dir: &Path, device: Device) -> Result<Artifact> {
    let manifest = read_manifest(dir)?;
    let wpath = dir.join(&manifest.weights.file);
    let here = dir.display();
    let bytes = fs::read(&wpath).with_context(|| {
        format!(
            "model artifact {here}: cannot read {}",
            manifest.weights.file
        )
    })?;
    ensure!(
        bytes.len() as u64 == manifest.weights.bytes,
        "model artifact {here}: {} is {} bytes but the manifest says {}: the file is truncated or was replaced",
        manifest.weights.file,
        bytes.len(),
        manifest.weights.bytes
    );
    let sha = sha256_hex(&bytes);
    ensure!(
        sha == manifest.weights.sha256,
        "model artifact {here}: {} has SHA-256 {sha} but the manifest says {}: the weights do not belong to this manifest",
        manifest.weights.file,
        manifest.weights.sha256
    );
    drop(bytes);
    let tensors = Tensor::read_safetensors(&wpath).with_context(|| {
        format!(
            "model artifact {here}: {} is not a valid safetensors file",
            manifest.weights.file
        )
    })?;
    let mut file: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    for (name, want) in &manifest.weights.tensors {
        let Some(t) = file.get(name) else {
            bail!("model artifact {here}: tensor `{name}` is listed in the manifest but missing from the weights");
        };
        ensure!(
            &t.size() == want,
            "model artifact {here}: tensor `{name}` has shape {:?} in the weights but {want:?} in the manifest",
            t.size()
        );
    }
    for name in file.keys() {
        ensure!(
            manifest.weights.tensors.contains_key(name),
            "model artifact {here}: the weights hold tensor `{name}`, which the manifest does not list"
        );
    }
    let mut config = manifest.config.clone();
    for f in config
        .schema
        .user_fields
        .iter_mut()
        .chain(config.schema.item_fields.iter_mut())
        .filter(|f| f.lookup == Lookup::Vocabulary)
    {
        let name = vocabulary_tensor(&f.name);
        let Some(t) = file.remove(&name) else {
            bail!("model artifact {here}: field `{}` has a vocabulary, but the weights lack tensor `{name}`", f.name);
        };
        let values = Vec::<i64>::try_from(t.to_kind(tch::Kind::Int64).flatten(0, -1))?;
        f.vocabulary = Some(Arc::new(Vocabulary::new(values)));
    }
    let model = Dumn::new(config, device).with_context(|| {
        format!("model artifact {here}: cannot build the model its manifest describes")
    })?;
    for (name, var) in &model.var_store().variables() {
        let Some(t) = file.remove(name) else {
            bail!("model artifact {here}: the model needs tensor `{name}`, which the artifact lacks (manifest and code disagree)");
        };
        ensure!(
            t.size() == var.size(),
            "model artifact {here}: tensor `{name}` has shape {:?}, the model built from the manifest needs {:?}",
            t.size(),
            var.size()
        );
        tch::no_grad(|| var.shallow_clone().copy_(&t));
    }
    if let Some(extra) = file.keys().next() {
        bail!("model artifact {here}: tensor `{extra}` is not part of the model its manifest describes");
    }
    // The manifest's config as the model holds it: with its vocabularies loaded.
    let manifest = Manifest {
        config: model.config.clone(),
        ..manifest
    };
    Ok(Artifact { manifest, model })
}

/// Loads the artifact at `loc`: a local folder, or an `s3://` prefix whose files are first
/// downloaded into a temporary folder (removed once the weights are in memory).
pub async fn open(loc: &Location, device: Device) -> Result<Artifact> {
    match loc {
        Location::Local(p) => load(p, device),
        Location::S3 { .. } => {
            let files = location::list(loc).await?;
            if !files.iter().any(|(name, _)| name == MANIFEST_FILE) {
                bail!(
                    "model artifact {loc} does not exist or has no {MANIFEST_FILE} \
                     (check the path; `dumn train --out {loc}` writes one)"
                );
            }
            let tmp = tempfile::Builder::new().prefix("dumn-model-").tempdir()?;
            for (name, _) in files.iter().filter(|(n, _)| !n.contains('/')) {
                let bytes = location::get(&loc.join(name)).await?;
                fs::write(tmp.path().join(name), bytes)?;
            }
            load(tmp.path(), device).with_context(|| format!("model artifact {loc}"))
        }
    }
}
