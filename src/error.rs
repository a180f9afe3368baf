//! The library's error type.
//!
//! Every error says *whose fault it is* ([`ErrorKind`]), and so what to do
//! about it and how the CLI exits:
//!
//! | kind | exit code | meaning |
//! |---|---|---|
//! | [`ErrorKind::Usage`] | 2 | bad arguments, or a file the user named that is missing |
//! | [`ErrorKind::Config`] | 3 | a topology or job file that fails to parse or validate (file and key named) |
//! | [`ErrorKind::Unavailable`] | 4 | a service or resource outside riftstream failed: Kafka, Redis, an object store, the disk |
//! | [`ErrorKind::Data`] | 5 | data that cannot be read: a record, a Parquet/CSV file, a model file |
//! | [`ErrorKind::Internal`] | 70 | an invariant of riftstream broke: a bug |
//!
//! A record that fails decoding or validation inside a job is not an error
//! of the job: it goes to the dead-letter path with its reason. Errors keep
//! their sources (`std::error::Error::source`), so the whole chain can be
//! printed. `anyhow` is used only at the CLI edge (`src/cli`).

use std::path::PathBuf;

/// A boxed error kept as the source of another.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whose fault an error is, and therefore what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad arguments or requests, or a file named by the user that is not there.
    Usage,
    /// A configuration file (topology, job file) that fails to parse or validate.
    Config,
    /// A system outside riftstream failed or cannot be reached (broker, Redis, object store, disk).
    Unavailable,
    /// Data that cannot be read: a record, a Parquet or CSV file, a model.
    Data,
    /// An invariant of riftstream itself broke.
    Internal,
}

impl ErrorKind {
    /// The process exit code the CLI uses for this kind (see the module docs).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage => 2,
            ErrorKind::Config => 3,
            ErrorKind::Unavailable => 4,
            ErrorKind::Data => 5,
            ErrorKind::Internal => 70,
        }
    }
}

/// Errors raised by the riftstream library.
#[derive(Debug, thiserror::Error)]
pub enum RiftError {
    /// A configuration value is missing or invalid; `key` names it, `file` says where.
    #[error("{file}: `{key}`: {message}")]
    Config {
        /// The topology file (or other config source) the key was read from.
        file: String,
        /// The dotted path of the offending key, e.g. `sources.matches.kind`.
        key: String,
        /// What is wrong and, where possible, what would be right.
        message: String,
    },
    /// A command-line argument or request made by the user is invalid.
    #[error("{0}")]
    Usage(String),
    /// A record failed decoding or validation (it is dead-lettered, not fatal).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external system (Kafka, Redis, object store, Schema Registry) failed.
    #[error("{system}: {message}")]
    External {
        /// Which system: `kafka`, `redis`, `object_store`, `delta`, `schema_registry`, `rocksdb`.
        system: &'static str,
        /// What failed.
        message: String,
        /// Whether retrying the same operation later can succeed.
        retryable: bool,
        /// The client library's own error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A Parquet or Arrow file or batch could not be read or written. Its
    /// kind is `Unavailable` when the cause is I/O (a full disk), else `Data`.
    #[error("{format}: {source}")]
    Format {
        /// `parquet` or `arrow`.
        format: &'static str,
        /// The library's error.
        #[source]
        source: BoxError,
    },
    /// Model training, loading or inference failed.
    #[error("model: {0}")]
    Model(String),
    /// An internal invariant broke: this is a bug in riftstream.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

/// Whether `e` or one of its sources is an I/O error.
fn caused_by_io(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<std::io::Error>() {
            return true;
        }
        next = e.source();
    }
    false
}

impl RiftError {
    /// Whose fault the error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RiftError::Config { .. } => ErrorKind::Config,
            RiftError::Usage(_) => ErrorKind::Usage,
            RiftError::InvalidRecord(_) | RiftError::Model(_) => ErrorKind::Data,
            RiftError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => ErrorKind::Usage,
                _ => ErrorKind::Unavailable,
            },
            RiftError::External { .. } => ErrorKind::Unavailable,
            RiftError::Format { source, .. } if caused_by_io(source.as_ref()) => ErrorKind::Unavailable,
            RiftError::Format { .. } => ErrorKind::Data,
            RiftError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether retrying the failed operation can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            RiftError::External { retryable, .. } => *retryable,
            RiftError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    /// Shorthand for a configuration error about `key` in `file`.
    pub fn config(file: impl Into<String>, key: impl Into<String>, message: impl Into<String>) -> Self {
        RiftError::Config {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Shorthand for an I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RiftError::Io {
            path: path.into(),
            source,
        }
    }

    /// A failure of an external system described by `message` alone.
    pub fn external(system: &'static str, message: impl ToString, retryable: bool) -> Self {
        RiftError::External {
            system,
            message: message.to_string(),
            retryable,
            source: None,
        }
    }

    /// A failure of an external system, keeping the client's error as the source.
    pub fn external_caused<E>(system: &'static str, error: E, retryable: bool) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        RiftError::External {
            system,
            message: error.to_string(),
            retryable,
            source: Some(Box::new(error)),
        }
    }
}

impl From<rocksdb::Error> for RiftError {
    fn from(e: rocksdb::Error) -> Self {
        RiftError::external_caused("rocksdb", e, false)
    }
}

impl From<object_store::Error> for RiftError {
    fn from(e: object_store::Error) -> Self {
        // Transport failures surface as `Generic`; every other variant is a
        // definite answer (missing object, bad path, denied, unsupported…)
        // that a retry would only repeat.
        let retryable = matches!(
            e,
            object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
        );
        RiftError::external_caused("object_store", e, retryable)
    }
}

impl From<deltalake_core::DeltaTableError> for RiftError {
    fn from(e: deltalake_core::DeltaTableError) -> Self {
        use deltalake_core::DeltaTableError as D;
        // A lost race (another commit took the version; retries ran out) or
        // a transport failure may pass on retry; a broken log or schema will not.
        let retryable = matches!(
            e,
            D::ObjectStore { .. } | D::VersionAlreadyExists(_) | D::Transaction { .. }
        );
        RiftError::external_caused("delta", e, retryable)
    }
}

impl From<parquet::errors::ParquetError> for RiftError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        RiftError::Format {
            format: "parquet",
            source: Box::new(e),
        }
    }
}

impl From<arrow::error::ArrowError> for RiftError {
    fn from(e: arrow::error::ArrowError) -> Self {
        RiftError::Format {
            format: "arrow",
            source: Box::new(e),
        }
    }
}

/// The library's result type.
pub type Result<T, E = RiftError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_documented_exit_codes() {
        let cases: Vec<(RiftError, i32)> = vec![
            (RiftError::Usage("x".into()), 2),
            (RiftError::config("t.toml", "jobs.a", "bad"), 3),
            (RiftError::external("kafka", "down", true), 4),
            (RiftError::InvalidRecord("x".into()), 5),
            (RiftError::Internal("x".into()), 70),
            (
                RiftError::io("missing.csv", std::io::Error::from(std::io::ErrorKind::NotFound)),
                2,
            ),
            (
                RiftError::io("lake", std::io::Error::from(std::io::ErrorKind::StorageFull)),
                4,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.kind().exit_code(), code, "{e}");
        }
    }

    #[test]
    fn parquet_errors_are_data_unless_io_caused_them() {
        let corrupt: RiftError = parquet::errors::ParquetError::General("bad magic".into()).into();
        assert_eq!(corrupt.kind(), ErrorKind::Data);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let disk: RiftError = parquet::errors::ParquetError::External(Box::new(full)).into();
        assert_eq!(disk.kind(), ErrorKind::Unavailable);
        let arrow_io: RiftError =
            arrow::error::ArrowError::IoError("write".into(), std::io::Error::other("disk")).into();
        assert_eq!(arrow_io.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn external_errors_keep_their_source() {
        use std::error::Error;
        let inner = std::io::Error::other("connection refused");
        let e = RiftError::external_caused("redis", inner, true);
        let source = e.source().expect("a source");
        assert_eq!(source.to_string(), "connection refused");
        assert!(e.is_retryable());
    }
}
