//! b2_authorize_account, answered in each API version's own shape.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use serde_json::{json, Value};

use crate::error::B2Result;
use crate::http::{header_str, ok_json, Body};
use crate::state::Shared;

/// Authorizes the HTTP Basic credentials (the body, b2sdk's `{}`, is read and ignored).
pub async fn handle(shared: Arc<Shared>, version: u8, req: Request<Incoming>) -> Response<Body> {
    let answer = match super::read_params(req).await {
        Ok((headers, _)) => authorize(&shared, version, &headers),
        Err(e) => Err(e),
    };
    answer.unwrap_or_else(|e| e.into_response())
}

fn authorize(shared: &Shared, version: u8, headers: &HeaderMap) -> B2Result<Response<Body>> {
    let (token, key) = shared
        .auth
        .authorize(header_str(headers, "authorization"))?;
    let base = &shared.base_url;
    let spec = &key.spec;
    let (bucket_id, bucket_name) = match &spec.bucket {
        Some(name) => (
            json!(shared.store.bucket_by_name(name).map(|b| b.id)),
            json!(name),
        ),
        None => (Value::Null, Value::Null),
    };
    let account_id = shared.auth.account_id();
    let body = match version {
        1 | 2 => json!({
            "accountId": account_id,
            "authorizationToken": token,
            "apiUrl": base,
            "downloadUrl": base,
            "s3ApiUrl": base,
            "recommendedPartSize": shared.recommended_part_size,
            "absoluteMinimumPartSize": shared.min_part_size,
            "minimumPartSize": shared.recommended_part_size,
            "allowed": {
                "bucketId": bucket_id,
                "bucketName": bucket_name,
                "capabilities": spec.capabilities,
                "namePrefix": spec.name_prefix,
            },
        }),
        3 => json!({
            "accountId": account_id,
            "authorizationToken": token,
            "applicationKeyExpirationTimestamp": null,
            "apiInfo": {
                "storageApi": {
                    "apiUrl": base,
                    "downloadUrl": base,
                    "s3ApiUrl": base,
                    "recommendedPartSize": shared.recommended_part_size,
                    "absoluteMinimumPartSize": shared.min_part_size,
                    "bucketId": bucket_id,
                    "bucketName": bucket_name,
                    "capabilities": spec.capabilities,
                    "namePrefix": spec.name_prefix,
                    "infoType": "storageApi",
                },
            },
        }),
        _ => {
            let buckets = match &spec.bucket {
                Some(_) => json!([{"id": bucket_id, "name": bucket_name}]),
                None => Value::Null,
            };
            json!({
                "accountId": account_id,
                "authorizationToken": token,
                "applicationKeyExpirationTimestamp": null,
                "apiInfo": {
                    "storageApi": {
                        "apiUrl": base,
                        "downloadUrl": base,
                        "s3ApiUrl": base,
                        "recommendedPartSize": shared.recommended_part_size,
                        "absoluteMinimumPartSize": shared.min_part_size,
                        "allowed": {
                            "buckets": buckets,
                            "capabilities": spec.capabilities,
                            "namePrefix": spec.name_prefix,
                        },
                        "infoType": "storageApi",
                    },
                },
            })
        }
    };
    Ok(ok_json(body))
}
