//! Test seeding, corruption and backdating: changes made without any B2 call.

use std::cmp::Reverse;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use sha1::{Digest, Sha1};

use super::journal::Record;
use super::model::{hex, now_millis, Segment};
use super::Store;
use crate::error::{B2Error, B2Result};

impl Store {
    /// Creates `count` files `{prefix}{i:08}` of `size` bytes, all sharing one blob.
    pub fn seed(&self, bucket_id: &str, prefix: &str, count: u64, size: u64) -> B2Result<()> {
        let temp = self.temp_path();
        let sha1 = write_pattern_file(&temp, size)?;
        let blob = self.adopt_blob(&temp)?;
        let mut state = self.lock();
        if !state.buckets.contains_key(bucket_id) {
            return Err(B2Error::bad_bucket_id(bucket_id));
        }
        let first_seq = state.next_seq;
        self.commit(
            &mut state,
            Record::Seeded {
                bucket_id: bucket_id.to_owned(),
                prefix: prefix.to_owned(),
                count,
                size,
                blob,
                sha1,
                first_seq,
                ts: now_millis(),
            },
        )
    }

    /// Makes the unfinished large files of `name` and their parts `millis` older; returns
    /// how many there were.
    pub fn backdate_unfinished(&self, bucket_id: &str, name: &str, millis: u64) -> B2Result<u64> {
        let mut state = self.lock();
        let seqs: Vec<u64> = state
            .buckets
            .get(bucket_id)
            .map(|b| {
                b.unfinished
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, Reverse(seq))| *seq)
                    .collect()
            })
            .unwrap_or_default();
        for &seq in &seqs {
            self.commit(&mut state, Record::Backdated { seq, millis })?;
        }
        Ok(seqs.len() as u64)
    }

    /// Gives the newest upload of `name` a copy of its content with one byte flipped,
    /// keeping the recorded SHA1.
    pub fn corrupt(&self, bucket_id: &str, name: &str) -> B2Result<()> {
        let version = self
            .newest_visible(bucket_id, name)
            .ok_or_else(|| B2Error::not_found(format!("no visible file {name}")))?;
        let Some(index) = version.content.iter().position(|s| s.len > 0) else {
            return Ok(()); // nothing to flip in an empty file
        };
        let segment = &version.content[index];
        let mut bytes = fs::read(self.blob_path(&segment.blob))?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let temp = self.temp_path();
        fs::write(&temp, &bytes)?;
        let blob = self.adopt_blob(&temp)?;
        let mut content = version.content.clone();
        content[index] = Segment {
            blob,
            len: segment.len,
        };
        let mut state = self.lock();
        self.commit(
            &mut state,
            Record::Replaced {
                seq: version.seq,
                content,
            },
        )
    }
}

/// Writes `size` bytes of a fixed pseudo-random pattern, returning their SHA1 (hex).
fn write_pattern_file(path: &Path, size: u64) -> io::Result<String> {
    let mut block = vec![0u8; 1 << 20];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    rng.fill(&mut block);
    let mut file = io::BufWriter::new(File::create(path)?);
    let mut hasher = Sha1::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        hasher.update(&block[..n]);
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(hex(&hasher.finalize()))
}
