//! The Orrery node: configuration, data directory, SQLite store and the `orrery` command line.
//!
//! This crate wires the pure crates (`orrery-protocol`, `orrery-crdt`) to disk. It is the only
//! crate that touches SQL. Everything it stores was verified first: local edits are checked by
//! the project document before they are committed, and foreign changes go through
//! `Project::ingest`.

pub mod batch;
pub mod blobs;
pub mod catalog;
pub mod citation;
pub mod cli;
pub mod config;
pub mod dataplane;
pub mod federation_view;
pub mod home;
pub mod labs;
pub mod logging;
pub mod metrics;
pub mod service;
pub mod setup;
pub mod store;
pub mod web_client;
