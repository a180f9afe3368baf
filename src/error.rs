//! The library's error type.
//!
//! Every error says *whose fault it is* ([`ErrorKind`]): the user's (bad
//! configuration or arguments — fix and retry), an external system's (Kafka,
//! Redis, object store, the filesystem — a retry may help), the data's (a
//! record that cannot be decoded or validated — it goes to the dead-letter
//! path, never stops a job) or ours (an internal invariant broke — a bug).
//! `anyhow` is used only at the CLI edge (`src/main.rs`).

use std::path::PathBuf;

/// Whose fault an error is, and therefore what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad configuration, arguments or files named by the user.
    User,
    /// A system outside riftstream failed (broker, Redis, object store, disk).
    External,
    /// A record could not be decoded or validated.
    Data,
    /// An invariant of riftstream itself broke.
    Internal,
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
        /// Which system: `kafka`, `redis`, `object_store`, `schema_registry`, `rocksdb`.
        system: &'static str,
        /// What failed.
        message: String,
        /// Whether retrying the same operation later can succeed.
        retryable: bool,
    },
    /// Model training, loading or inference failed.
    #[error("model: {0}")]
    Model(String),
    /// An internal invariant broke: this is a bug in riftstream.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl RiftError {
    /// Whose fault the error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RiftError::Config { .. } | RiftError::Usage(_) => ErrorKind::User,
            RiftError::InvalidRecord(_) => ErrorKind::Data,
            RiftError::Io { .. } | RiftError::External { .. } => ErrorKind::External,
            RiftError::Model(_) => ErrorKind::User,
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

    /// Shorthand for a failure of an external system.
    pub fn external(system: &'static str, message: impl ToString, retryable: bool) -> Self {
        RiftError::External {
            system,
            message: message.to_string(),
            retryable,
        }
    }
}

impl From<rocksdb::Error> for RiftError {
    fn from(e: rocksdb::Error) -> Self {
        RiftError::external("rocksdb", e, false)
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
        RiftError::external("object_store", e, retryable)
    }
}

impl From<parquet::errors::ParquetError> for RiftError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        RiftError::Internal(format!("parquet: {e}"))
    }
}

impl From<arrow::error::ArrowError> for RiftError {
    fn from(e: arrow::error::ArrowError) -> Self {
        RiftError::Internal(format!("arrow: {e}"))
    }
}

/// The library's result type.
pub type Result<T, E = RiftError> = std::result::Result<T, E>;

impl From<crate::model::ModelError> for RiftError {
    fn from(e: crate::model::ModelError) -> Self {
        match e {
            crate::model::ModelError::Io { path, source } => RiftError::Io { path, source },
            other => RiftError::Model(other.to_string()),
        }
    }
}
