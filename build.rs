//! Build script: make libtorch's CUDA library a real dependency of the binary.
//!
//! Nothing in `tch` references `libtorch_cuda.so` directly, so a plain link drops it
//! (`--as-needed`) and `tch::Cuda::is_available()` is then false even on a GPU machine.
//! We re-add it with `--no-as-needed`, and set an rpath to the libtorch `lib` folder that
//! `torch-sys` found (exported to us as `DEP_TCH_LIBTORCH_LIB` through its `links = "tch"`),
//! so the binary runs without `LD_LIBRARY_PATH`. On a CPU-only machine the CUDA library
//! still loads (it only fails to find a device), so one binary serves both.
//!
//! It also stamps the build: `DUMN_BUILD` is the package version with the git commit as
//! semver build metadata (`0.1.0+6d97118`), or the bare version outside a git checkout.
//! `dumn --version`, every artifact's manifest and `dumn ablate`'s tables print it.

fn main() {
    stamp_build();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
        let has_cuda = std::path::Path::new(&lib).join("libtorch_cuda.so").exists();
        if has_cuda {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-ltorch");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}

/// Sets `DUMN_BUILD` (see the module docs); reruns when HEAD moves.
fn stamp_build() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let build = match git(&["rev-parse", "--short=7", "HEAD"]) {
        Some(commit) if !commit.is_empty() => format!("{version}+{commit}"),
        _ => version,
    };
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/refs/heads");
        println!("cargo:rerun-if-changed={git_dir}/packed-refs");
    }
    println!("cargo:rustc-env=DUMN_BUILD={build}");
}
