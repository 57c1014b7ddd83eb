//! The installable tarball (`ci/package.sh`): unpacked into a fresh folder, it runs with an
//! empty environment, loading nothing from this clone or its venv.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::scoring::Fixture;

/// Packs the test build of dumn with `ci/package.sh` and unpacks it into `into`: the
/// unpacked top folder.
fn pack_and_unpack(work: &Path, into: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/package.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--bin", env!("CARGO_BIN_EXE_dumn"), "--out"])
        .arg(work.join("dist"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ci/package.sh failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tarball = PathBuf::from(stdout.lines().last().unwrap().trim());
    assert!(tarball.is_file(), "no tarball at {}", tarball.display());
    std::fs::create_dir_all(into).unwrap();
    let unpack = if tarball.to_string_lossy().ends_with(".tar.zst") {
        Command::new("tar")
            .args(["-I", "zstd", "-xf"])
            .arg(&tarball)
            .current_dir(into)
            .status()
    } else {
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .current_dir(into)
            .status()
    };
    assert!(unpack.unwrap().success());
    // The staging folder is gone and only the tarball is left in --out.
    assert_eq!(std::fs::read_dir(work.join("dist")).unwrap().count(), 1);
    let top: Vec<PathBuf> = std::fs::read_dir(into)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(top.len(), 1, "one top folder in the tarball: {top:?}");
    top[0].clone()
}

/// The packaged binary, run from `cwd` with nothing in its environment.
fn bare(bin: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_clear().current_dir(cwd);
    c
}

#[test]
fn the_tarball_runs_a_job_without_the_clone() {
    let work = tempfile::tempdir().unwrap();
    let root = pack_and_unpack(work.path(), &work.path().join("elsewhere"));
    let bin = root.join("bin/dumn");

    // Every library the loader finds comes from the package or the system, never from this
    // clone's venv; none is missing.
    let ldd = Command::new("ldd").arg(&bin).env_clear().output().unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout).into_owned();
    assert!(!ldd.contains("not found"), "{ldd}");
    let root = root.canonicalize().unwrap();
    let mut from_package = Vec::new();
    for line in ldd.lines().filter(|l| l.contains("=> /")) {
        // `/…/bin/../lib/libc10.so (0x…)`: the path, with `..` resolved.
        let path = line
            .split("=> ")
            .nth(1)
            .unwrap()
            .split(" (")
            .next()
            .unwrap();
        let path = Path::new(path).canonicalize().unwrap();
        if path.starts_with(&root) {
            from_package.push(path.file_name().unwrap().to_string_lossy().into_owned());
        } else {
            assert!(
                path.starts_with("/lib") || path.starts_with("/usr/lib"),
                "a library from outside the package and the system: {line}"
            );
        }
    }
    for lib in ["libtorch_cpu.so", "libc10.so"] {
        assert!(from_package.iter().any(|l| l == lib), "{lib}: {ldd}");
    }

    let version = bare(&bin, work.path()).arg("--version").output().unwrap();
    assert!(version.status.success());
    // The packed binary is this checkout's build: its version and commit (build.rs).
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("dumn {}", dumn::BUILD)
    );
    assert!(dumn::BUILD.starts_with(env!("CARGO_PKG_VERSION")));

    // A small nightly job, scored by the packaged binary.
    let fx = Fixture::new(4);
    let job = fx.job("job.toml", "");
    let run = bare(&bin, work.path())
        .arg("run")
        .arg(&job)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary = |stdout: &str| -> serde_json::Value {
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let packaged = summary(&stdout);
    assert!(fx.day("scores").join("_SUCCESS").is_file());
    // The same rows as the clone's own build of the same job.
    let reference = fx.path("reference");
    let (ok, stdout, stderr) = crate::common::data::run_dumn_in(
        work.path(),
        &[
            "run",
            job.to_str().unwrap(),
            "--set",
            &format!("out={}", reference.display()),
        ],
        &[],
    );
    assert!(ok, "{stdout}{stderr}");
    let reference = summary(&stdout);
    assert!(packaged["scores"]["rows"].as_u64().unwrap() > 0);
    assert_eq!(packaged["scores"]["rows"], reference["scores"]["rows"]);
    assert_eq!(packaged["ranking"]["rows"], reference["ranking"]["rows"]);
}
