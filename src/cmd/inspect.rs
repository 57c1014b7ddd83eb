//! `dumn inspect`: print a model artifact's manifest.

use std::path::PathBuf;

use anyhow::Result;

use dumn::artifact;

pub fn run(dir: PathBuf) -> Result<()> {
    let m = artifact::read_manifest(&dir)?;
    println!("{}", serde_json::to_string_pretty(&m)?);
    Ok(())
}
