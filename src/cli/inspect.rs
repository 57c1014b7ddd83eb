//! `dumn inspect`: print a model's manifest (JSON, on stdout) and, on stderr, the arguments
//! its SQL functions take, by name.

use anyhow::Result;

use dumn::io::failure::{Failure, MarkFailure};
use dumn::model::registry;
use dumn::udfs::score::arguments;

pub async fn run(model: String) -> Result<()> {
    let loaded = registry::open(&model, tch::Device::Cpu)
        .await
        .failure(Failure::BadInput)?;
    let m = &loaded.manifest;
    println!("{}", serde_json::to_string_pretty(m)?);
    let args = arguments(&m.config.schema);
    let names: Vec<&str> = args.iter().map(|(n, _)| n.as_str()).collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    eprintln!(
        "dumn_ctr / dumn_dislike / dumn_score({}); dumn_predict('TABLE') matches them by name:",
        names.join(", ")
    );
    for (name, what) in &args {
        eprintln!("  {name:<width$}  {what}");
    }
    Ok(())
}
