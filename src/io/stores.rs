//! The object stores behind `s3://` URLs: one S3 store per bucket, configured the standard
//! way from the environment, and the registry every DataFusion session resolves URLs with.
//!
//! Contract: S3 is configured from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION` (default `us-east-1`), `AWS_ENDPOINT`, and `AWS_ALLOW_HTTP=true` for an
//! `http://` endpoint. Requests are retried a bounded number of times, so an unreachable
//! server fails a job instead of hanging it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, RetryConfig};
use url::Url;

/// An S3 store for `bucket`, configured from the standard `AWS_*` environment variables.
/// Requests are retried a bounded number of times (3, within 30 s) so that an unreachable
/// server fails a job instead of hanging it.
pub fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let store = builder.with_retry(retry).build().with_context(|| {
        format!("configuring S3 for bucket `{bucket}` from the AWS_* variables")
    })?;
    Ok(Arc::new(store))
}

/// The object stores of a DataFusion session: local files, and one S3 store per bucket,
/// configured with [`s3_store`] the first time a URL names the bucket. Every dumn session
/// uses it (each subcommand's, and a cluster's scheduler and executors), so no step has to
/// register a bucket before its SQL reads or writes it.
#[derive(Debug, Default)]
pub struct Stores {
    known: DefaultObjectStoreRegistry,
}

impl Stores {
    /// A registry for a session's `RuntimeEnv`.
    pub fn registry() -> Arc<dyn ObjectStoreRegistry> {
        Arc::new(Stores::default())
    }
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) => {
                let store = s3_store(bucket)
                    .map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
                self.known.register_store(url, store.clone());
                Ok(store)
            }
            _ => self.known.get_store(url),
        }
    }
}
