//! The emulator's conformance suite: one test binary, one module per concern.

mod common;

mod auth;
mod binary;
mod copy;
mod downloads;
mod embedding;
mod encryption;
mod faults;
mod large_files;
mod listing;
mod object_lock;
mod persistence;
mod truth;
mod uploads;
mod variants;
mod wan;
