//! B2's billing classes of its calls (Backblaze's transaction-pricing page): what a
//! response's `transactions` adds up by.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingClass {
    /// Free: uploads, upload URLs, large-file starts and ends, deletes, hides.
    A,
    /// Downloads and `b2_get_file_info`.
    B,
    /// Authorization, every listing, copies, bucket and key management.
    C,
}

pub fn billing_class(call: &str) -> BillingClass {
    match call {
        "b2_download_file_by_id" | "b2_download_file_by_name" | "b2_get_file_info" => {
            BillingClass::B
        }
        "b2_authorize_account"
        | "b2_copy_file"
        | "b2_copy_part"
        | "b2_create_bucket"
        | "b2_update_bucket"
        | "b2_create_key"
        | "b2_get_download_authorization" => BillingClass::C,
        c if c.starts_with("b2_list_") => BillingClass::C,
        // Class A is the rest of B2's calls: uploads, upload URLs, start/finish/cancel,
        // deletes, hides, retention and legal-hold updates.
        _ => BillingClass::A,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_this_library_makes_are_billed_as_b2_says() {
        use BillingClass::*;
        for (call, class) in [
            ("b2_upload_file", A),
            ("b2_upload_part", A),
            ("b2_get_upload_url", A),
            ("b2_get_upload_part_url", A),
            ("b2_start_large_file", A),
            ("b2_finish_large_file", A),
            ("b2_cancel_large_file", A),
            ("b2_delete_file_version", A),
            ("b2_hide_file", A),
            ("b2_download_file_by_id", B),
            ("b2_get_file_info", B),
            ("b2_authorize_account", C),
            ("b2_list_buckets", C),
            ("b2_list_file_names", C),
            ("b2_list_file_versions", C),
            ("b2_list_parts", C),
            ("b2_list_unfinished_large_files", C),
        ] {
            assert_eq!(billing_class(call), class, "{call}");
        }
    }
}
