//! Error type of the core. Input errors name the offending argument.

use thiserror::Error;

/// Errors raised by the core.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// The caller passed an argument that cannot be used (maps to `ValueError`).
    #[error("{arg}: {msg}")]
    InvalidInput { arg: &'static str, msg: String },
    /// A numerical failure on valid input (maps to the package's `NumericalError`).
    #[error("{0}")]
    Numerical(String),
    /// The system refused a resource, e.g. the threads of a pool (maps to `RuntimeError`).
    #[error("{0}")]
    Resource(String),
}

impl Error {
    pub(crate) fn invalid(arg: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidInput { arg, msg: msg.into() }
    }
}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, Error>;
