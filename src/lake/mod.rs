//! The Parquet lake on object_store: bronze, silver and gold tables.
//!
//! # Layout (SPEC "Lake")
//! ```text
//! {root}/bronze/{topic}/date=YYYY-MM-DD/hour=HH/part-….parquet     every consumed record, unchanged
//! {root}/silver/{table}/date=YYYY-MM-DD/game_mode=M/part-….parquet decoded, validated, deduplicated
//! {root}/gold/{table}/date=YYYY-MM-DD/metric_type=T/part-….parquet aggregates, features, predictions
//! {root}/_staging/…                                                files written but not yet committed
//! {root}/models/{name}/{version}/                                  the model registry
//! ```
//! Partition values live only in the path (hive style), never inside files,
//! so DuckDB, pyarrow, Polars and Spark read every table with hive
//! partitioning as is. Files are zstd-compressed Parquet.
//!
//! # Commit protocol
//! A writer stages files under `_staging/` (invisible to table globs) and
//! moves them into place on commit. File names are deterministic:
//! `part-{writer}-w{worker}-e{epoch}-{n}.parquet`, so a replay of the same
//! epoch after a crash rewrites the same files instead of adding duplicates.
//! Each writer records its last committed epoch in `_writers/`, and a new run
//! continues after it, so a second run never overwrites the first run's files.

pub mod background;
pub mod compact;
pub mod delta;
pub mod gold;
pub mod offline;
pub mod tables;
pub mod writer;

use crate::error::{Result, RiftError};
pub use crate::util::partition_value;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;

/// An opened lake root.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Prefix of the lake inside the store.
    pub prefix: ObjectPath,
    /// The root as configured (for messages).
    pub root: String,
    /// The table format writers use (readers find out per table).
    pub format: crate::config::LakeFormat,
}

impl Lake {
    /// Opens a lake root: a local path, or an `s3://`, `gs://`, `az://` URL
    /// (credentials and endpoints from the usual environment variables, e.g.
    /// `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`).
    pub fn open(root: &str) -> Result<Lake> {
        Lake::open_with(root, &std::collections::BTreeMap::new())
    }

    /// Opens a lake root with object_store `options` (`endpoint`,
    /// `allow_http`, `region`, …) that override the environment's.
    pub fn open_with(root: &str, options: &std::collections::BTreeMap<String, String>) -> Result<Lake> {
        if root.contains("://") && !root.starts_with("file://") {
            let url = url::Url::parse(root)
                .map_err(|e| RiftError::Usage(format!("lake root `{root}` is not a valid URL: {e}")))?;
            let settings = std::env::vars().chain(options.iter().map(|(k, v)| (k.clone(), v.clone())));
            let (store, prefix) = object_store::parse_url_opts(&url, settings)?;
            return Ok(Lake {
                store: Arc::from(store),
                prefix,
                root: root.to_string(),
                format: Default::default(),
            });
        }
        let path = root.strip_prefix("file://").unwrap_or(root);
        std::fs::create_dir_all(path).map_err(|e| RiftError::io(path, e))?;
        let store = LocalFileSystem::new_with_prefix(path)?;
        Ok(Lake {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
            root: root.to_string(),
            format: Default::default(),
        })
    }

    /// The lake of a `[sinks.NAME]` lake sink: its root, options and format.
    pub fn of_sink(sink: &crate::config::SinkConfig) -> Option<Result<Lake>> {
        match sink {
            crate::config::SinkConfig::Lake {
                root, options, format, ..
            } => Some(Lake::open_with(root, options).map(|lake| Lake {
                format: *format,
                ..lake
            })),
            _ => None,
        }
    }

    /// The store at the root of the lake's file system or bucket, and the
    /// lake root's URL in it (how Delta tables address their files).
    pub fn delta_root(&self) -> Result<(Arc<dyn ObjectStore>, url::Url)> {
        if self.root.contains("://") && !self.root.starts_with("file://") {
            let mut url = url::Url::parse(&self.root)
                .map_err(|e| RiftError::Usage(format!("lake root `{}` is not a valid URL: {e}", self.root)))?;
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            return Ok((self.store.clone(), url));
        }
        let path = self.root.strip_prefix("file://").unwrap_or(&self.root);
        let absolute = std::fs::canonicalize(path).map_err(|e| RiftError::io(path, e))?;
        let url = url::Url::from_directory_path(&absolute)
            .map_err(|()| RiftError::Usage(format!("lake root `{}` is not an absolute path", absolute.display())))?;
        Ok((Arc::new(LocalFileSystem::new()), url))
    }

    /// The lake of `topology`'s first lake sink, with its object_store options.
    pub fn of_topology(topology: &crate::config::Topology) -> Result<Lake> {
        topology
            .sinks
            .values()
            .find_map(Lake::of_sink)
            .unwrap_or_else(|| Err(RiftError::config(&topology.file, "sinks", "no lake sink")))
    }

    /// The full object path of `relative` (a `/`-separated path under the root).
    pub fn path(&self, relative: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for part in relative.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    /// Lists the objects under `relative`, with their sizes.
    pub fn list(&self, relative: &str) -> Result<Vec<(ObjectPath, u64)>> {
        use futures::TryStreamExt;
        let prefix = self.path(relative);
        let store = self.store.clone();
        crate::util::block_on(async move {
            let metas: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
            Ok(metas.into_iter().map(|m| (m.location, m.size)).collect())
        })
    }
}

impl Lake {
    /// The path of `full` relative to the lake root.
    pub fn relative(&self, full: &ObjectPath) -> String {
        let prefix = self.prefix.as_ref();
        let s = full.as_ref();
        s.strip_prefix(prefix).unwrap_or(s).trim_start_matches('/').to_string()
    }

    /// Reads an object whole.
    pub fn get(&self, path: &ObjectPath) -> Result<bytes::Bytes> {
        let store = self.store.clone();
        let path = path.clone();
        crate::util::block_on(async move { Ok(store.get(&path).await?.bytes().await?) })
    }

    /// Reads an object whole, or `None` when it does not exist.
    pub fn get_opt(&self, path: &ObjectPath) -> Result<Option<bytes::Bytes>> {
        let store = self.store.clone();
        let path = path.clone();
        crate::util::block_on(async move {
            match store.get(&path).await {
                Ok(r) => Ok(Some(r.bytes().await?)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Writes an object whole (atomically: readers see the old or the new bytes).
    pub fn put(&self, path: &ObjectPath, bytes: bytes::Bytes) -> Result<()> {
        let store = self.store.clone();
        let path = path.clone();
        crate::util::block_on(async move {
            store.put(&path, object_store::PutPayload::from(bytes)).await?;
            Ok(())
        })
    }

    /// Moves an object.
    pub fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        let store = self.store.clone();
        let (from, to) = (from.clone(), to.clone());
        crate::util::block_on(async move { Ok(store.rename(&from, &to).await?) })
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub fn delete(&self, path: &ObjectPath) -> Result<()> {
        let store = self.store.clone();
        let path = path.clone();
        crate::util::block_on(async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Reads every record batch of a Parquet object.
    pub fn read_parquet(&self, path: &ObjectPath) -> Result<Vec<arrow::array::RecordBatch>> {
        let bytes = self.get(path)?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    }
}

/// `date=YYYY-MM-DD` of a UTC ms time.
pub fn date_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// `HH` of a UTC ms time.
pub fn hour_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H").to_string())
        .unwrap_or_else(|| "00".into())
}
