//! The emulator's conformance suite: one test binary, one module per concern.

mod common;

mod auth;
mod binary;
mod downloads;
mod embedding;
mod encryption;
mod faults;
mod large_files;
mod listing;
mod persistence;
mod truth;
mod uploads;
mod wan;
