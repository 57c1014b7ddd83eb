//! `dumn models`: the versions and aliases of a model registry (the folder `dumn train
//! --out MODELS` writes; see `src/model/registry.rs`).

use anyhow::Result;
use clap::{Args, Subcommand};

use dumn::io::failure::{Failure, MarkFailure};
use dumn::io::Location;
use dumn::model::registry::{Registry, DEFAULT_ALIAS};

#[derive(Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// List the versions of MODELS, oldest first, with their aliases and metrics.
    #[command(after_long_help = "Example:

  dumn models list models/ctr
  dumn models list s3://bucket/models/ctr --json")]
    List {
        /// The registry folder, local or s3://.
        models: String,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Point an alias of MODELS at one of its versions (a rollback, a promotion), in one
    /// atomic step.
    #[command(after_long_help = "Example:

  dumn models alias models/ctr prod 20261205T071500Z-ab12cd34")]
    Alias {
        /// The registry folder, local or s3://.
        models: String,
        /// The alias to move (created when missing).
        alias: String,
        /// The version it names from now on (`dumn models list` shows them).
        #[arg(value_name = "VERSION")]
        to: String,
    },
}

pub async fn run(args: ModelsArgs) -> Result<()> {
    match args.command {
        ModelsCommand::List { models, json } => list(&models, json).await,
        ModelsCommand::Alias { models, alias, to } => {
            let registry = Registry::new(Location::parse(&models)?);
            registry
                .set_alias(&alias, &to)
                .await
                .failure(Failure::BadInput)?;
            println!("{models}@{alias} -> {to}");
            Ok(())
        }
    }
}

async fn list(models: &str, json: bool) -> Result<()> {
    let registry = Registry::new(Location::parse(models)?);
    let versions = registry.list().await.failure(Failure::BadInput)?;
    if versions.is_empty() {
        return Err(anyhow::anyhow!(
            "{models} holds no model versions (`dumn train --out {models}` writes one)"
        ))
        .failure(Failure::BadInput);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&versions)?);
        return Ok(());
    }
    // The metrics every version has, in a stable order: AUC first.
    let mut keys: Vec<&String> = versions[0].metrics.keys().collect();
    keys.retain(|k| versions.iter().all(|v| v.metrics.contains_key(*k)));
    keys.sort_by_key(|k| (!k.ends_with("_auc"), !k.starts_with("valid"), k.to_string()));
    keys.truncate(4);
    print!(
        "{:<26} {:<20} {:<14}",
        "version", "created (UTC)", "aliases"
    );
    for k in &keys {
        print!(" {k:>18}");
    }
    println!();
    for v in &versions {
        let aliases = if v.aliases.is_empty() {
            "-".to_string()
        } else {
            v.aliases.join(",")
        };
        print!(
            "{:<26} {:<20} {:<14}",
            v.version,
            v.created_at.format("%Y-%m-%d %H:%M:%S"),
            aliases
        );
        for k in &keys {
            print!(" {:>18.4}", v.metrics[*k]);
        }
        println!();
    }
    if !versions
        .iter()
        .any(|v| v.aliases.iter().any(|a| a == DEFAULT_ALIAS))
    {
        dumn::io::log::warn(format_args!(
            "{models} has no `{DEFAULT_ALIAS}` alias: `{models}` alone names no model"
        ));
    }
    Ok(())
}
