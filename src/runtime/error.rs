/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Node(#[from] crate::multi::Error),
    /// The write-ahead log failed: the node can no longer promise
    /// durability and refuses further work.
    #[error("storage: {0}")]
    Storage(String),
    #[error("network: {0}")]
    Network(String),
    /// The call does not fit the node's mode (e.g. `tick` on a started node).
    #[error("{0}")]
    Mode(&'static str),
    #[error("the node is stopped")]
    Shutdown,
}
