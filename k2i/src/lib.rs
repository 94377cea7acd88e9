//! k2i, the kernel interface: one host's live state as JSON over HTTPS.
pub mod containers;
pub mod query;
