//! Recordings in S3-compatible object storage: [`ObjectSink`].
//!
//! Objects cannot be appended to, so each chunk the recorder appends is an object of its own,
//! `PREFIX/YYYY-MM-DD/SESSION/NNNNNNNN.jsonl.gz` (the day the session started, the chunk's
//! number). A session's recording is its chunks in number order, concatenated: the same gzip
//! stream [`crate::LocalDir`] keeps in one file. A chunk is durable once its `PUT` returned, so
//! a broker that dies mid-session loses at most the chunk it was writing, as with files, and
//! any broker sharing the bucket can read every recording.
//!
//! The recorder calls sinks from blocking threads; this sink runs its requests on a small
//! runtime of its own from there.

use crate::local_dir::{DAY_MS, date_name, parse_date_name};
use crate::sink::{Sink, validate_session_id};
use futures_util::StreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The suffix of every chunk object.
const SUFFIX: &str = ".jsonl.gz";

/// Where and how to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// `https://...`, or `http://` on loopback; AWS when `None`.
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// Prepended to every key (no leading or trailing `/` needed).
    pub prefix: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Server-side encryption asked for on every object: `AES256` or `aws:kms`, with a KMS
    /// key id for `aws:kms` (or the bucket's default key); `None` leaves it to the bucket.
    pub encryption: Option<(String, Option<String>)>,
}

/// A [`Sink`] on S3-compatible object storage. See the [module documentation](self).
pub struct ObjectSink {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    describe: String,
    /// Taken at drop, to shut down without blocking (the broker may drop the sink on its runtime).
    runtime: Option<tokio::runtime::Runtime>,
    /// The next chunk number of each session this broker is writing.
    next: Mutex<HashMap<String, u64>>,
    /// The last append's failure, for health checks; cleared by a good append.
    failing: Mutex<Option<String>>,
}

impl std::fmt::Debug for ObjectSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSink")
            .field("at", &self.describe)
            .finish_non_exhaustive()
    }
}

impl ObjectSink {
    /// A sink on the bucket `options` name. Nothing is contacted until the first use.
    pub fn s3(options: S3Options) -> io::Result<Self> {
        // A recording that cannot be written must be known quickly: a required session waits
        // for its header. A few quick retries, then the failure (the defaults retry for
        // minutes).
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let client = object_store::ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(30));
        let mut builder = AmazonS3Builder::new()
            .with_retry(retry)
            .with_client_options(client)
            .with_bucket_name(&options.bucket)
            .with_region(&options.region)
            .with_access_key_id(&options.access_key_id)
            .with_secret_access_key(&options.secret_access_key);
        if let Some((kind, kms_key)) = &options.encryption {
            let key = |name: &str| {
                name.parse().map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {e}"))
                })
            };
            builder = builder.with_config(key("aws_server_side_encryption")?, kind);
            if let Some(id) = kms_key {
                builder = builder.with_config(key("aws_sse_kms_key_id")?, id);
            }
        }
        let mut describe = format!("bucket {}", options.bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
            describe.push_str(&format!(" at {endpoint}"));
        }
        let store = builder
            .build()
            .map_err(|e| io::Error::other(format!("cannot set up {describe}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-object-sink")
            .enable_all()
            .build()?;
        let prefix = options.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            describe.push_str(&format!(" under {prefix}/"));
        }
        Ok(Self {
            store: Arc::new(store),
            prefix,
            describe,
            runtime: Some(runtime),
            next: Mutex::new(HashMap::new()),
            failing: Mutex::new(None),
        })
    }

    fn block_on<T>(&self, work: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
        match &self.runtime {
            Some(runtime) => runtime.block_on(work),
            None => Err(io::Error::other("the recording sink has shut down")),
        }
    }

    fn key(&self, rest: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{rest}", self.prefix))
        }
    }

    /// The chunk objects under `dir`, in key order (the chunk numbers are zero-padded).
    async fn chunks(&self, dir: &Path) -> io::Result<Vec<Path>> {
        let mut listed = self.store.list(Some(dir));
        let mut keys = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| self.error("cannot list", e))?;
            if meta.location.as_ref().ends_with(SUFFIX) {
                keys.push(meta.location);
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// The day directories in the bucket, with their day numbers.
    async fn days(&self) -> io::Result<Vec<(u64, Path)>> {
        let root = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let listed = self
            .store
            .list_with_delimiter(root.as_ref())
            .await
            .map_err(|e| self.error("cannot list", e))?;
        Ok(listed
            .common_prefixes
            .into_iter()
            .filter_map(|dir| {
                let day = parse_date_name(dir.filename()?)?;
                Some((day, dir))
            })
            .collect())
    }

    fn error(&self, doing: &str, e: object_store::Error) -> io::Error {
        let kind = match e {
            object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, format!("{doing} {}: {e}", self.describe))
    }

    fn lock_next(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.next.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note(&self, result: &io::Result<()>) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        *failing = result.as_ref().err().map(ToString::to_string);
    }
}

impl Sink for ObjectSink {
    fn append(&self, session: &str, started_at_ms: u64, chunk: &[u8]) -> io::Result<()> {
        validate_session_id(session).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let dir = self.key(&format!("{}/{session}", date_name(started_at_ms / DAY_MS)));
        let known = self.lock_next().get(session).copied();
        let result = self.block_on(async {
            // A session this broker has not written yet: continue after what is there (none,
            // unless the recording was started before a restart).
            let number = match known {
                Some(n) => n,
                None => self.chunks(&dir).await?.len() as u64,
            };
            let key = Path::from(format!("{dir}/{number:08}{SUFFIX}"));
            self.store
                .put(&key, PutPayload::from(chunk.to_vec()))
                .await
                .map_err(|e| self.error("cannot write to", e))?;
            Ok(number + 1)
        });
        let result = result.map(|next| {
            self.lock_next().insert(session.to_owned(), next);
        });
        self.note(&result);
        result
    }

    fn read(&self, session: &str) -> io::Result<Option<Vec<u8>>> {
        validate_session_id(session).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.block_on(async {
            for (_, day) in self.days().await? {
                let dir = Path::from(format!("{day}/{session}"));
                let chunks = self.chunks(&dir).await?;
                if chunks.is_empty() {
                    continue;
                }
                let mut all = Vec::new();
                for key in chunks {
                    let got = self
                        .store
                        .get(&key)
                        .await
                        .map_err(|e| self.error("cannot read from", e))?;
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(|e| self.error("cannot read from", e))?;
                    all.extend_from_slice(&bytes);
                }
                return Ok(Some(all));
            }
            Ok(None)
        })
    }

    fn remove_older_than(&self, cutoff_ms: u64) -> io::Result<usize> {
        self.block_on(async {
            let mut removed = 0;
            for (day, dir) in self.days().await? {
                // Whole days only, as for files: a day is removed once all of it is older.
                if (day + 1).saturating_mul(DAY_MS) > cutoff_ms {
                    continue;
                }
                let mut sessions = std::collections::BTreeSet::new();
                for key in self.chunks(&dir).await? {
                    if let Some(session) = key.parts().nth_back(1) {
                        sessions.insert(session.as_ref().to_owned());
                    }
                    self.store
                        .delete(&key)
                        .await
                        .map_err(|e| self.error("cannot delete from", e))?;
                }
                removed += sessions.len();
            }
            Ok(removed)
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn check(&self) -> io::Result<()> {
        match &*self.failing.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(()),
        }
    }
}

impl Drop for ObjectSink {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
