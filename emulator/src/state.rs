//! The state every request shares: the store, the keys and tokens, the fault queue and
//! counters, and the settings handed to clients.

use crate::auth::Auth;
use crate::faults::Faults;
use crate::store::Store;
use crate::wan::WanModel;

/// State shared by every request.
pub struct Shared {
    pub store: Store,
    pub auth: Auth,
    pub faults: Faults,
    /// `http(s)://127.0.0.1:PORT`: the apiUrl and downloadUrl handed to clients.
    pub base_url: String,
    pub min_part_size: u64,
    pub recommended_part_size: u64,
    /// Added latency and bandwidth cap (the WAN model); off by default.
    pub wan: WanModel,
    /// Added to the time in every answer's `Date`: a test's B2 whose clock is off.
    pub clock_offset_ms: std::sync::atomic::AtomicI64,
    /// The answer shapes asked for, per call (canonical when none).
    pub variants: crate::variants::Variants,
    /// TLS handshakes begun (HTTPS only).
    pub tls_handshakes: std::sync::atomic::AtomicU64,
}
