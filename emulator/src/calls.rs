//! Every B2 call the emulator serves, declared once: its name (the path segment, the
//! counter's key and the fault point) and its handler. Adding a call is one entry here
//! plus its handler.

use crate::api::{parse, Answer, JsonHandler};

/// Who answers a call.
#[derive(Clone, Copy)]
pub enum Handler {
    /// b2_authorize_account: HTTP Basic credentials, answered in each version's shape.
    Authorize,
    /// A JSON call that needs an account token.
    Json(JsonHandler),
    /// `/b2api/vN/b2_upload_file/{bucketId}/{urlId}`: the body is file content.
    UploadFile,
    /// `/b2api/vN/b2_upload_part/{fileId}/{urlId}`: the body is part content.
    UploadPart,
    /// `/b2api/vN/b2_download_file_by_id`.
    DownloadById,
    /// `/file/{bucketName}/{fileName}` (no `/b2api/` path).
    DownloadByName,
    /// A call B2 has and the emulator does not serve: refused with an error naming it,
    /// never a 404 that a client would read as "file not present".
    Unimplemented,
}

pub struct CallSpec {
    pub name: &'static str,
    pub handler: Handler,
}

impl CallSpec {
    pub fn is_download(&self) -> bool {
        matches!(
            self.handler,
            Handler::DownloadById | Handler::DownloadByName
        )
    }

    /// Calls whose request body is file content.
    pub fn is_upload(&self) -> bool {
        matches!(self.handler, Handler::UploadFile | Handler::UploadPart)
    }
}

/// A JSON call whose handler is a `Ctx` method taking the call's typed request.
macro_rules! json_call {
    ($name:literal, $method:ident) => {
        CallSpec {
            name: $name,
            handler: Handler::Json(|ctx, params| Ok(Answer::from(ctx.$method(parse(params)?)?))),
        }
    };
}

/// A call of B2's native API that the emulator does not serve.
macro_rules! unimplemented_call {
    ($name:literal) => {
        CallSpec {
            name: $name,
            handler: Handler::Unimplemented,
        }
    };
}

pub const CALLS: &[CallSpec] = &[
    CallSpec {
        name: "b2_authorize_account",
        handler: Handler::Authorize,
    },
    json_call!("b2_list_buckets", list_buckets),
    json_call!("b2_create_bucket", create_bucket),
    json_call!("b2_update_bucket", update_bucket),
    json_call!("b2_delete_bucket", delete_bucket),
    json_call!("b2_get_upload_url", get_upload_url),
    CallSpec {
        name: "b2_upload_file",
        handler: Handler::UploadFile,
    },
    json_call!("b2_start_large_file", start_large_file),
    json_call!("b2_get_upload_part_url", get_upload_part_url),
    CallSpec {
        name: "b2_upload_part",
        handler: Handler::UploadPart,
    },
    json_call!("b2_finish_large_file", finish_large_file),
    json_call!("b2_cancel_large_file", cancel_large_file),
    json_call!("b2_list_unfinished_large_files", list_unfinished),
    json_call!("b2_list_parts", list_parts),
    json_call!("b2_list_file_names", list_file_names),
    json_call!("b2_list_file_versions", list_file_versions),
    json_call!("b2_hide_file", hide_file),
    json_call!("b2_delete_file_version", delete_file_version),
    json_call!("b2_get_file_info", get_file_info),
    json_call!("b2_update_file_retention", update_file_retention),
    json_call!("b2_update_file_legal_hold", update_file_legal_hold),
    CallSpec {
        name: "b2_download_file_by_name",
        handler: Handler::DownloadByName,
    },
    CallSpec {
        name: "b2_download_file_by_id",
        handler: Handler::DownloadById,
    },
    json_call!("b2_copy_file", copy_file),
    json_call!("b2_copy_part", copy_part),
    unimplemented_call!("b2_create_key"),
    unimplemented_call!("b2_delete_key"),
    unimplemented_call!("b2_list_keys"),
    unimplemented_call!("b2_get_download_authorization"),
    unimplemented_call!("b2_get_bucket_notification_rules"),
    unimplemented_call!("b2_set_bucket_notification_rules"),
];

pub fn find(name: &str) -> Option<&'static CallSpec> {
    CALLS.iter().find(|c| c.name == name)
}

/// Every name counted and faultable, the unimplemented calls included.
pub fn names() -> Vec<&'static str> {
    CALLS.iter().map(|c| c.name).collect()
}
