//! Test harness: a throwaway PostgreSQL 15 cluster and a minimal PostgreSQL client that drives
//! `serve` over an in-memory stream.

#![allow(dead_code, clippy::unwrap_used)]

pub mod client;
pub mod cluster;
