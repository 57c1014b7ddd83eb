//! A real S3-compatible server (s3s-fs) on 127.0.0.1 for the tests, started per test and
//! stopped when dropped. `ci/setup.sh --test-server` builds it, patched so that a
//! conditional create (`If-None-Match: *`) is atomic as on AWS S3; $DUMN_S3S_FS (set by
//! `source ci/env.sh`) names the binary.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "dumn-test-key";
pub const SECRET_KEY: &str = "dumn-test-secret";

pub struct S3Server {
    child: Child,
    pub endpoint: String,
    /// The server's storage: one sub-folder per bucket, objects as plain files.
    pub root: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let p = std::env::var_os("DUMN_S3S_FS").map(PathBuf::from);
    match p {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "the S3 tests need the patched s3s-fs server named by $DUMN_S3S_FS ({p:?}): \
             run the tests through ci/test.sh, or `source ci/env.sh && ci/setup.sh \
             --test-server` first"
        ),
    }
}

impl S3Server {
    /// Starts the server with the given buckets on a free port and waits until it listens.
    pub fn start(buckets: &[&str]) -> S3Server {
        let root = tempfile::tempdir().unwrap();
        for b in buckets {
            std::fs::create_dir_all(root.path().join(b)).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        S3Server {
            child: spawn(port, root.path()),
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        }
    }

    /// Stops the server (its files stay); requests then fail with connection errors.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and files.
    pub fn restart(&mut self) {
        self.stop();
        let port: u16 = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        self.child = spawn(port, self.root.path());
    }

    /// The standard AWS variables that point a client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// An object store client for `bucket` on this server, configured from [`Self::env`]
    /// (the variables the dumn processes get), for a test to read or write objects itself.
    pub fn store(&self, bucket: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in self.env() {
            builder = builder.with_config(key.to_ascii_lowercase().parse().unwrap(), value);
        }
        std::sync::Arc::new(builder.build().unwrap())
    }
}

/// Starts s3s-fs on `port` over `root` and waits until it listens.
fn spawn(port: u16, root: &std::path::Path) -> Child {
    let child = Command::new(binary())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting s3s-fs");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "s3s-fs did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
