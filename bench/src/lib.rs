//! Shared pieces of the benchmarks in `src/bin/`: a crowd of sleeping processes to measure
//! against ([`sleepers`]), medians and percentiles ([`stats`]), and what `/proc` says about
//! a process or the machine ([`probe`]), nats-server processes, plain or clustered with TLS
//! ([`nats`]), the process table refreshed by k2i's sampler or by
//! `sysinfo` ([`table`]), real middlecon daemons with their certificates ([`middlecon`]), the
//! times a daemon logs ([`daemon_log`]), and the options and output every report shares
//! ([`report`]).
//!
//! Every benchmark measures the tool under test side by side with a reference in the same
//! run, and reports medians and ratios: the machines these run on are noisy.

pub mod daemon_log;
pub mod middlecon;
pub mod nats;
pub mod probe;
pub mod report;
pub mod sleepers;
pub mod stats;
pub mod table;
