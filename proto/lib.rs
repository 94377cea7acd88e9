//! The `.proto` files of middlecon live beside this file. Generated code is added with
//! the middlecon daemon (issue 4); until then this crate only ships the sources.
#![forbid(unsafe_code)]

/// The protocol source, for tools that want to generate their own clients.
pub const MIDDLECON_V1_PROTO: &str = include_str!("middlecon/v1/middlecon.proto");
