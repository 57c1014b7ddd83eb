//! `dumn inspect`: print a model artifact's manifest (JSON, on stdout) and, on stderr, the
//! argument list its SQL functions take.

use std::path::PathBuf;

use anyhow::Result;

use dumn::model::artifact;
use dumn::model::inputs::model_inputs;

pub fn run(dir: PathBuf) -> Result<()> {
    let m = artifact::read_manifest(&dir)?;
    println!("{}", serde_json::to_string_pretty(&m)?);
    eprintln!(
        "dumn_ctr / dumn_dislike / dumn_score arguments: {}",
        model_inputs(&m.config.schema).join(", ")
    );
    Ok(())
}
