//! The byte format. (in progress)
