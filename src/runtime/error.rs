//! Why a runtime call failed: the errors of the layers the runtime joins,
//! kept whole, and its own.

use crate::multi;
use crate::storage::WalError;
use crate::wire::WireError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node refused the call or the message.
    #[error(transparent)]
    Node(#[from] multi::Error),
    /// A frame that is not a muxraft frame (or is over the size limit).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A well-formed frame of another cluster.
    #[error("frame from cluster {got}, this node is in cluster {expected}")]
    WrongCluster { expected: u64, got: u64 },
    /// A frame whose envelope names another sender than the host says sent it.
    #[error("frame claims to come from node {claimed}, the host says node {sender}")]
    WrongSender { claimed: u64, sender: u64 },
    /// The write-ahead log failed (opening, recovering or writing). After a
    /// failed write the node refuses further work ([`Error::Failed`]).
    #[error("storage: {0}")]
    Storage(#[from] WalError),
    /// The transport could not start (listen, spawn).
    #[error("network: {0}")]
    Network(String),
    /// The call does not fit the node's mode (e.g. `tick` on a started node).
    #[error("{0}")]
    Mode(&'static str),
    #[error("the node is stopped")]
    Shutdown,
    /// A write to storage failed earlier: what reached the disk is unknown,
    /// so the node refuses all further work. Open the data directory again
    /// (recovery) to continue.
    #[error("the node's storage failed earlier; it refuses further work")]
    Failed,
    /// A bug inside muxraft was caught earlier; the node's state can no
    /// longer be trusted and it refuses all further work.
    #[error("an internal error was caught earlier (please report); the node refuses further work")]
    Panicked,
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::Node(multi::Error::InvalidArgument(msg.into()))
    }
}
