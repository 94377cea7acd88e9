//! dcos CLI library.
