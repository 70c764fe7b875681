//! A client for B2's native API: sessions and authorization, retries, uploads, listings,
//! downloads.

pub mod api;
pub mod backoff;
pub mod billing;
pub mod by_name;
pub mod calls;
mod chunk_pool;
pub mod client;
pub mod download;
pub mod encryption;
pub mod http;
mod in_order;
pub mod late;
pub mod lenient;
pub mod list;
pub mod lookups;
pub mod object_lock;
pub mod retry;
pub mod session;
pub mod settings;
pub mod settle;
pub mod throttle;
pub mod tls;
pub mod upload;
pub mod wire;

pub use client::B2Client;
pub use session::{B2Session, SessionRegistry};
pub use settings::{ApplicationKey, B2Settings};

/// B2's largest part, and largest single upload: 5 GB.
pub const MAX_PART_SIZE: u64 = 5_000_000_000;
/// B2's most parts in one large file.
pub const MAX_PARTS: u64 = 10_000;
/// B2's largest file: 10 TB.
pub const MAX_FILE_SIZE: u64 = 10_000_000_000_000;
