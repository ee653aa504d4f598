//! How sending a request upstream can fail, as the pools report it.

use crate::body::BoxError;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(BoxError),
    /// The connection broke or the upstream reset the stream.
    #[error("{0}")]
    Reset(BoxError),
}
