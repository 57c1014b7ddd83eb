//! dumn's integration tests, gathered in one test binary (as ripgrep does) so that libtorch,
//! DataFusion and Ballista are linked once. One module per area; shared helpers in
//! `common/`. Run one area with `cargo test --test tests scoring::`.

mod common;

mod adapters;
mod artifact;
mod bad_input;
mod cluster;
mod data_plane;
mod delta;
mod equations;
mod learning;
mod models;
mod package;
mod prompt;
mod s3;
mod scoring;
mod train;
