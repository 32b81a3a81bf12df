//! Many groups on one node. (in progress)
