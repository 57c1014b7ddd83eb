//! `dumn vacuum`: deletes the files of a Delta table that no recent version needs.

use anyhow::Result;
use clap::Args;

use dumn::io::delta;
use dumn::io::failure::{Failure, MarkFailure};
use dumn::io::Location;

#[derive(Args)]
pub struct VacuumArgs {
    /// The Delta table, local or s3:// (a folder with _delta_log/), e.g. out/scores.
    pub table: String,
    /// Keep every file that a version of the last N hours reads. A reader that opened an
    /// older version may fail once its files are gone.
    #[arg(long, value_name = "N", default_value_t = 168)]
    pub retain_hours: u64,
    /// List the files that would be deleted, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: VacuumArgs) -> Result<()> {
    let table = Location::parse(&args.table).failure(Failure::BadInput)?;
    let done = delta::vacuum(&table, args.retain_hours, args.dry_run)
        .await
        .failure(Failure::BadInput)?;
    for file in &done.files {
        println!("{file}");
    }
    println!(
        "{} {} file(s) of {table} that no version of the last {} hours reads",
        if done.dry_run {
            "would delete"
        } else {
            "deleted"
        },
        done.files.len(),
        args.retain_hours
    );
    Ok(())
}
