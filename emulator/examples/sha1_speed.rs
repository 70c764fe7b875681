//! SHA1 throughput of one core with the `sha1` crate that the library and the emulator
//! use (one Cargo.lock, so the same version and backend): the benchmark's hashing floor.
//!
//! ```text
//! cargo run --release -p b2-emulator --example sha1_speed [-- SECONDS]
//! ```
//! Prints one line: `sha1_mb_per_s=N median_mb_per_s=M` (1 MB = 1,000,000 bytes): N is the
//! fastest 16 MiB block, since a floor is what the core can do, and a neighbour on a shared
//! machine only ever slows a block down; M is the median block.

use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.5);
    let mut block = vec![0u8; 16 << 20];
    fastrand::Rng::with_seed(1).fill(&mut block);
    let mut hasher = Sha1::new();
    // One untimed pass: page faults and CPU frequency ramp-up are not hashing.
    hasher.update(&block);
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut rates = Vec::new();
    while started.elapsed() < budget {
        let block_started = Instant::now();
        hasher.update(&block);
        rates.push(block.len() as f64 / block_started.elapsed().as_secs_f64() / 1e6);
    }
    std::hint::black_box(hasher.finalize());
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "sha1_mb_per_s={:.0} median_mb_per_s={:.0}",
        rates[rates.len() - 1],
        rates[rates.len() / 2]
    );
}
