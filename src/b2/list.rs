//! Listings, page by page with the largest page B2 allows: file names, file versions,
//! unfinished large files and parts.

use super::api::{FileVersion, Part};
use super::calls::{ListFileNames, ListFileVersions, ListParts, ListUnfinishedLargeFiles};
use super::client::B2Client;
use crate::error::Result;

/// B2's largest page for file listings (each 1,000 returned is billed as one call).
pub const MAX_PAGE: u32 = 10_000;

/// Which listing, and where it stands.
pub struct FileLister {
    /// Every version (`b2_list_file_versions`), or the newest of each name.
    versions: bool,
    bucket_id: String,
    prefix: String,
    page_size: u32,
    next_name: Option<String>,
    next_id: Option<String>,
    done: bool,
}

impl FileLister {
    /// The newest visible version of each name under `prefix`.
    pub fn names(bucket_id: &str, prefix: &str) -> FileLister {
        FileLister::new(false, bucket_id, prefix)
    }

    /// Every version under `prefix`: uploads, hide markers and unfinished large files.
    pub fn versions(bucket_id: &str, prefix: &str) -> FileLister {
        FileLister::new(true, bucket_id, prefix)
    }

    fn new(versions: bool, bucket_id: &str, prefix: &str) -> FileLister {
        FileLister {
            versions,
            bucket_id: bucket_id.to_string(),
            prefix: prefix.to_string(),
            page_size: MAX_PAGE,
            next_name: None,
            next_id: None,
            done: false,
        }
    }

    /// Starts at `name` and asks for `page_size` entries a page.
    pub fn starting_at(mut self, name: &str, page_size: u32) -> FileLister {
        self.next_name = Some(name.to_string());
        self.page_size = page_size.clamp(1, MAX_PAGE);
        self
    }

    /// The next page, or None when the listing is complete.
    pub async fn next_page(&mut self, client: &B2Client) -> Result<Option<Vec<FileVersion>>> {
        if self.done {
            return Ok(None);
        }
        let page = if self.versions {
            client
                .list_file_versions(&ListFileVersions {
                    bucket_id: &self.bucket_id,
                    prefix: &self.prefix,
                    max_file_count: self.page_size,
                    start_file_name: self.next_name.as_deref(),
                    start_file_id: self.next_id.as_deref(),
                })
                .await?
        } else {
            client
                .list_file_names(&ListFileNames {
                    bucket_id: &self.bucket_id,
                    prefix: &self.prefix,
                    max_file_count: self.page_size,
                    start_file_name: self.next_name.as_deref(),
                })
                .await?
        };
        self.next_name = page.next_file_name;
        self.next_id = page.next_file_id;
        self.done = self.next_name.is_none();
        Ok(Some(page.files))
    }

    /// Every entry, all pages.
    pub async fn collect_all(mut self, client: &B2Client) -> Result<Vec<FileVersion>> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page(client).await? {
            all.extend(page);
            client.op.check_cancelled()?;
        }
        Ok(all)
    }
}

/// The newest version of exactly `name`, if it exists and is not hidden.
pub async fn find_file(
    client: &B2Client,
    bucket_id: &str,
    name: &str,
) -> Result<Option<FileVersion>> {
    let mut lister = FileLister::names(bucket_id, name).starting_at(name, 1);
    let page = lister.next_page(client).await?.unwrap_or_default();
    Ok(page
        .into_iter()
        .find(|f| f.file_name == name && f.is_stored()))
}

/// Unfinished large files whose name is exactly `name`.
pub async fn unfinished_large_files(
    client: &B2Client,
    bucket_id: &str,
    name: &str,
) -> Result<Vec<FileVersion>> {
    let mut all = unfinished_under(client, bucket_id, name).await?;
    all.retain(|f| f.file_name == name);
    Ok(all)
}

/// Unfinished large files whose name starts with `prefix`.
pub async fn unfinished_under(
    client: &B2Client,
    bucket_id: &str,
    prefix: &str,
) -> Result<Vec<FileVersion>> {
    let mut out = Vec::new();
    let mut start_id: Option<String> = None;
    loop {
        let page = client
            .list_unfinished_large_files(&ListUnfinishedLargeFiles {
                bucket_id,
                name_prefix: prefix,
                max_file_count: 100,
                start_file_id: start_id.as_deref(),
            })
            .await?;
        out.extend(page.files);
        match page.next_file_id {
            Some(id) => start_id = Some(id),
            None => return Ok(out),
        }
        client.op.check_cancelled()?;
    }
}

/// Every uploaded part of an unfinished large file.
pub async fn parts(client: &B2Client, file_id: &str) -> Result<Vec<Part>> {
    let mut out = Vec::new();
    let mut start = 1u32;
    loop {
        let page = client
            .list_parts(&ListParts {
                file_id,
                start_part_number: start,
                max_part_count: 1000,
            })
            .await?;
        out.extend(page.parts);
        match page.next_part_number {
            Some(n) if n > start => start = n,
            _ => return Ok(out),
        }
    }
}
