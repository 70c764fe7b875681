//! Listings: file names and versions (with prefix, delimiter and cursor), unfinished
//! large files, parts.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;

use super::model::{visible, Part, Version};
use super::Store;
use crate::error::{B2Error, B2Result};

/// An entry of a file listing.
pub enum ListEntry {
    File(Version),
    Folder(String),
}

pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub start_name: Option<&'a str>,
    pub start_seq: Option<u64>,
    pub max: usize,
    /// true: b2_list_file_versions; false: b2_list_file_names.
    pub all_versions: bool,
}

pub struct ListPage {
    pub entries: Vec<ListEntry>,
    pub next_name: Option<String>,
    pub next_seq: Option<u64>,
}

impl Store {
    pub fn list(&self, bucket_id: &str, q: &ListQuery<'_>) -> B2Result<ListPage> {
        let state = self.lock();
        let bucket = state
            .buckets
            .get(bucket_id)
            .ok_or_else(|| B2Error::bad_bucket_id(bucket_id))?;
        Ok(list_bucket(&bucket.names, q))
    }

    /// Unfinished large files by name (newest first within a name), from `start_seq`.
    pub fn list_unfinished(
        &self,
        bucket_id: &str,
        prefix: &str,
        start_seq: Option<u64>,
        max: usize,
    ) -> B2Result<(Vec<Version>, Option<u64>)> {
        let state = self.lock();
        let bucket = state
            .buckets
            .get(bucket_id)
            .ok_or_else(|| B2Error::bad_bucket_id(bucket_id))?;
        let lower = match start_seq {
            Some(seq) => {
                let (_, name) = state
                    .locations
                    .get(&seq)
                    .ok_or_else(|| B2Error::bad_request("invalid startFileId"))?;
                (name.clone(), Reverse(seq))
            }
            None => (prefix.to_owned(), Reverse(u64::MAX)),
        };
        let mut files = Vec::new();
        let mut next = None;
        for (name, Reverse(seq)) in bucket.unfinished.range(lower..) {
            if !name.starts_with(prefix) {
                if name.as_str() > prefix {
                    break;
                }
                continue;
            }
            if files.len() == max {
                next = Some(*seq);
                break;
            }
            if let Some(v) = state.version(*seq) {
                files.push(v.clone());
            }
        }
        Ok((files, next))
    }

    /// Parts of an unfinished large file from `start`, and the next part number.
    pub fn list_parts(
        &self,
        seq: u64,
        start: u32,
        max: usize,
    ) -> B2Result<(Vec<Part>, Option<u32>)> {
        let state = self.lock();
        let parts = state
            .parts
            .get(&seq)
            .ok_or_else(|| B2Error::bad_request("no unfinished large file with this fileId"))?;
        let mut iter = parts.range(start..);
        let page: Vec<Part> = iter.by_ref().take(max).map(|(_, p)| p.clone()).collect();
        let next = iter.next().map(|(n, _)| *n);
        Ok((page, next))
    }

    /// Every version of a bucket (hide markers and unfinished large files included), B2 order.
    pub fn all_versions(&self, bucket_id: &str) -> Vec<Version> {
        let state = self.lock();
        state
            .buckets
            .get(bucket_id)
            .map(|b| b.names.values().flatten().cloned().collect())
            .unwrap_or_default()
    }
}

/// The smallest string greater than every string starting with `s`.
fn prefix_successor(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(nc) = char::from_u32(next) {
            chars.push(nc);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn list_bucket(names: &BTreeMap<String, Vec<Version>>, q: &ListQuery<'_>) -> ListPage {
    let mut page = ListPage {
        entries: Vec::new(),
        next_name: None,
        next_seq: None,
    };
    let start = match q.start_name {
        Some(s) if s > q.prefix => s,
        _ => q.prefix,
    };
    let mut lower: Bound<String> = Bound::Included(start.to_owned());
    let delimiter = q.delimiter.filter(|d| !d.is_empty());
    while let Some((name, versions)) = names
        .range::<str, _>((lower.as_ref().map(|s| s.as_str()), Bound::Unbounded))
        .next()
    {
        if !name.starts_with(q.prefix) {
            break;
        }
        if let Some(d) = delimiter {
            if let Some(pos) = name[q.prefix.len()..].find(d) {
                let folder = &name[..q.prefix.len() + pos + d.len()];
                let after = prefix_successor(folder);
                let upper = match &after {
                    Some(a) => Bound::Excluded(a.as_str()),
                    None => Bound::Unbounded,
                };
                let shown = q.all_versions
                    || names
                        .range::<str, _>((Bound::Included(folder), upper))
                        .any(|(_, vs)| visible(vs).is_some());
                if shown {
                    if page.entries.len() == q.max {
                        page.next_name = Some(folder.to_owned());
                        return page;
                    }
                    page.entries.push(ListEntry::Folder(folder.to_owned()));
                }
                match after {
                    Some(a) => lower = Bound::Included(a),
                    None => break,
                }
                continue;
            }
        }
        if q.all_versions {
            let from_seq = match (q.start_seq, q.start_name) {
                (Some(seq), Some(start)) if start == name => seq,
                _ => u64::MAX,
            };
            for v in versions.iter().filter(|v| v.seq <= from_seq) {
                if page.entries.len() == q.max {
                    page.next_name = Some(name.clone());
                    page.next_seq = Some(v.seq);
                    return page;
                }
                page.entries.push(ListEntry::File(v.clone()));
            }
        } else if let Some(v) = visible(versions) {
            if page.entries.len() == q.max {
                page.next_name = Some(name.clone());
                return page;
            }
            page.entries.push(ListEntry::File(v.clone()));
        }
        lower = Bound::Excluded(name.clone());
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_bounds_a_folder() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("\u{d7ff}").as_deref(), Some("\u{e000}"));
        assert_eq!(prefix_successor(""), None);
    }
}
