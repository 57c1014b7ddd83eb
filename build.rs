//! Build script: make libtorch's CUDA library a real dependency of the binary.
//!
//! Nothing in `tch` references `libtorch_cuda.so` directly, so a plain link drops it
//! (`--as-needed`) and `tch::Cuda::is_available()` is then false even on a GPU machine.
//! We re-add it with `--no-as-needed`, and set an rpath to the libtorch `lib` folder that
//! `torch-sys` found (exported to us as `DEP_TCH_LIBTORCH_LIB` through its `links = "tch"`),
//! so the binary runs without `LD_LIBRARY_PATH`. On a CPU-only machine the CUDA library
//! still loads (it only fails to find a device), so one binary serves both.

fn main() {
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
