//! Every field of B2's answers that this library reads, in the forms real servers send:
//! given, null, absent, and (for enums) a value this library does not know.

use serde_json::{json, Value};

use super::*;
use crate::b2::object_lock::{BucketLock, RetentionMode};

fn bucket(extra: Value) -> Bucket {
    let mut b = json!({"bucketId": "b1", "bucketName": "n", "accountId": "a"});
    b.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(b).expect("a bucket with an id and a name always reads")
}

fn version(v: Value) -> FileVersion {
    serde_json::from_value(v).expect("an object always reads")
}

fn lock_config(value: Value) -> Value {
    json!({"fileLockConfiguration": {"isClientAuthorizedToRead": true, "value": value}})
}

#[test]
fn a_bucket_made_without_object_lock_as_b2sdk_s_simulator_shows_it() {
    let b = bucket(lock_config(json!({
        "isFileLockEnabled": null,
        "defaultRetention": {"mode": null, "period": null}
    })));
    assert_eq!(b.lock(), BucketLock::Off);
}

#[test]
fn bucket_lock_fields_null_absent_and_unknown() {
    let on = |retention: Value| {
        bucket(lock_config(
            json!({"isFileLockEnabled": true, "defaultRetention": retention}),
        ))
        .lock()
    };
    assert_eq!(
        on(json!({"mode": "governance", "period": {"duration": 7, "unit": "days"}})),
        BucketLock::On(Some((RetentionMode::Governance, 7, "days".into())))
    );
    assert_eq!(
        on(json!({"mode": "governance", "period": {"duration": null, "unit": "days"}})),
        BucketLock::On(None)
    );
    assert_eq!(
        on(json!({"mode": null, "period": null})),
        BucketLock::On(None)
    );
    assert_eq!(on(Value::Null), BucketLock::On(None));
    assert_eq!(
        on(json!({"mode": "legal-ish", "period": {"duration": 1, "unit": "years"}})),
        BucketLock::On(Some((RetentionMode::Unknown, 1, "years".into())))
    );
    // The flag null or absent: the value B2 sent is read; without one nothing is known.
    for flag in [Value::Null, json!("yes")] {
        let b = bucket(json!({"fileLockConfiguration": {
            "isClientAuthorizedToRead": flag, "value": {"isFileLockEnabled": true}
        }}));
        assert_eq!(b.lock(), BucketLock::On(None));
    }
    let b =
        bucket(json!({"fileLockConfiguration": {"isClientAuthorizedToRead": null, "value": null}}));
    assert_eq!(b.lock(), BucketLock::Unknown);
    let b = bucket(
        json!({"fileLockConfiguration": {"isClientAuthorizedToRead": false, "value": null}}),
    );
    assert_eq!(b.lock(), BucketLock::Unknown);
    assert_eq!(
        bucket(json!({"fileLockConfiguration": null})).lock(),
        BucketLock::Unknown
    );
    assert_eq!(bucket(json!({})).lock(), BucketLock::Unknown);
}

#[test]
fn bucket_type_rules_and_encryption_null_absent_and_unknown() {
    let b = bucket(json!({
        "bucketType": null, "lifecycleRules": null, "bucketInfo": null, "corsRules": null,
        "options": null, "defaultServerSideEncryption": null, "replicationConfiguration": null
    }));
    assert_eq!(b.bucket_type, "");
    assert!(b.lifecycle_rules.is_empty());
    assert_eq!(b.default_encryption(), None);

    let b = bucket(json!({
        "bucketType": "snapshot",
        "lifecycleRules": [
            {"fileNamePrefix": null, "daysFromHidingToDeleting": 1, "daysFromUploadingToHiding": null},
            {"daysFromHidingToDeleting": null},
            "not a rule"
        ],
        "defaultServerSideEncryption": {"isClientAuthorizedToRead": null, "value": {"mode": "SSE-B2", "algorithm": null}}
    }));
    assert_eq!(b.bucket_type, "snapshot");
    assert_eq!(b.lifecycle_rules.len(), 2);
    assert_eq!(b.lifecycle_rules[0].file_name_prefix, "");
    assert_eq!(b.lifecycle_rules[0].days_from_hiding_to_deleting, Some(1));
    assert_eq!(b.default_encryption(), Some("SSE-B2"));

    let b = bucket(
        json!({"defaultServerSideEncryption": {"isClientAuthorizedToRead": true, "value": {"mode": null}}}),
    );
    assert_eq!(b.default_encryption(), Some("none"));
    let b = bucket(
        json!({"defaultServerSideEncryption": {"isClientAuthorizedToRead": false, "value": null}}),
    );
    assert_eq!(b.default_encryption(), None);
}

#[test]
fn a_file_entry_with_every_optional_field_null() {
    let v = version(json!({
        "fileId": "id1", "fileName": "a/b", "action": "upload", "contentLength": 5,
        "contentSha1": null, "contentType": null, "fileInfo": null, "uploadTimestamp": null,
        "serverSideEncryption": null, "fileRetention": null, "legalHold": null,
        "replicationStatus": null, "contentMd5": null
    }));
    assert!(v.is_stored());
    assert_eq!(v.length(), Some(5));
    assert!(v.file_info.is_empty());
    assert_eq!(v.upload_timestamp, None);
    assert_eq!(v.modified_ms(), 0);
    assert_eq!(v.whole_sha1(), None);
    assert_eq!(v.encryption_mode(), None);
    assert_eq!(v.lock().retention, None);
    assert_eq!(v.lock().legal_hold, None);
    assert_eq!(v.unreadable(), None);
}

#[test]
fn a_file_entry_with_every_optional_field_absent() {
    let v =
        version(json!({"fileId": "id1", "fileName": "a", "action": "upload", "contentLength": 0}));
    assert!(v.is_stored());
    assert_eq!(v.unreadable(), None);
}

#[test]
fn actions_absent_null_and_unknown_are_kept_and_a_version_with_id_and_length_is_stored() {
    for (action, read) in [
        (json!(null), Action::Unknown),
        (json!("copy"), Action::Other("copy".into())),
        (json!("UPLOAD"), Action::Other("UPLOAD".into())),
        (json!(7), Action::Unknown),
    ] {
        let v =
            version(json!({"fileId": "i", "fileName": "f", "action": action, "contentLength": 3}));
        assert_eq!(v.action, read);
        assert!(v.is_stored(), "{action}");
        let why = v.unreadable().expect("named in a warning");
        assert!(
            why.contains("f (i)") && why.contains("taken as a stored file"),
            "{why}"
        );
    }
    let v = version(json!({"fileId": "i", "fileName": "f", "contentLength": 3}));
    assert_eq!(v.action, Action::Unknown);
    assert!(v.is_stored());
    // Without a length or an id, it is not taken as a stored file, and says so.
    let v = version(json!({"fileId": "i", "fileName": "f", "action": "copy"}));
    assert!(!v.is_stored());
    assert!(v.unreadable().unwrap().contains("no contentLength"));
    let v = version(json!({"fileName": "f", "action": "upload", "contentLength": 1}));
    assert!(v.unreadable().unwrap().contains("no fileId"));
    for (a, want) in [
        ("start", Action::Start),
        ("hide", Action::Hide),
        ("folder", Action::Folder),
    ] {
        assert_eq!(version(json!({"action": a})).action, want);
    }
}

#[test]
fn the_length_falls_back_to_v1_size() {
    let v = version(json!({"fileId": "i", "fileName": "f", "action": "upload", "size": 42}));
    assert_eq!(v.length(), Some(42));
    let v = version(
        json!({"fileId": "i", "fileName": "f", "action": "upload", "contentLength": null, "size": 42}),
    );
    assert_eq!(v.length(), Some(42));
    let v = version(
        json!({"fileId": "i", "fileName": "f", "action": "upload", "contentLength": 7, "size": 42}),
    );
    assert_eq!(v.length(), Some(7));
}

#[test]
fn file_lock_fields_null_absent_and_unknown() {
    let with = |retention: Value, hold: Value| {
        version(
            json!({"fileId": "i", "fileName": "f", "action": "upload", "contentLength": 1,
            "fileRetention": retention, "legalHold": hold}),
        )
        .lock()
    };
    let l = with(
        json!({"isClientAuthorizedToRead": null, "value": {"mode": "compliance", "retainUntilTimestamp": 9}}),
        json!({"isClientAuthorizedToRead": null, "value": "ON"}),
    );
    assert_eq!(
        l.retention.unwrap().unwrap().mode,
        RetentionMode::Compliance
    );
    assert_eq!(l.legal_hold, Some(true));
    // b2sdk's simulator: no retention is {"mode": null} without a timestamp.
    let l = with(
        json!({"isClientAuthorizedToRead": true, "value": {"mode": null}}),
        json!(null),
    );
    assert_eq!(l.retention, Some(None));
    assert_eq!(l.legal_hold, None);
    let l = with(
        json!({"isClientAuthorizedToRead": false, "value": null}),
        json!({"isClientAuthorizedToRead": false, "value": null}),
    );
    assert_eq!(l.retention, None);
    assert_eq!(l.legal_hold, None);
    // A mode this library does not know is held, and kept as B2 wrote it.
    let l = with(
        json!({"isClientAuthorizedToRead": true, "value": {"mode": "frozen", "retainUntilTimestamp": 100}}),
        json!(null),
    );
    let r = l.retention.unwrap().unwrap();
    assert_eq!(r.mode, RetentionMode::Unknown);
    assert_eq!(l.held(50), Some(Some(100)));
    assert_eq!(l.active_retention(50), Some(r));
}

#[test]
fn file_info_values_that_are_not_strings_are_kept_as_text() {
    let v = version(
        json!({"fileInfo": {"src_last_modified_millis": 17, "x": null, "large_file_sha1": "A".repeat(40)}}),
    );
    assert_eq!(v.modified_ms(), 17);
    assert_eq!(v.whole_sha1(), Some("a".repeat(40)));
}

#[test]
fn a_listing_keeps_every_entry_even_one_it_cannot_read() {
    let page: ListFilesResponse = serde_json::from_value(json!({
        "files": [
            {"fileId": "1", "fileName": "a", "action": "upload", "contentLength": 1},
            42,
            null,
            {"fileId": "3", "fileName": "c", "action": "copy", "size": 3}
        ],
        "nextFileName": null,
        "nextFileId": 5
    }))
    .unwrap();
    assert_eq!(page.files.len(), 4);
    assert!(page.files[1]
        .unreadable()
        .unwrap()
        .contains("an entry without a name"));
    assert!(page.files[3].is_stored());
    assert_eq!(page.next_file_name, None);
    assert_eq!(page.next_file_id, None);
}

#[test]
fn parts_with_null_sha1_and_timestamp_read() {
    let parts: ListPartsResponse = serde_json::from_value(json!({
        "parts": [
            {"partNumber": 1, "contentLength": 5, "contentSha1": null, "uploadTimestamp": null, "fileId": "f"},
            {"partNumber": 2, "contentLength": 5, "contentSha1": "ab"}
        ],
        "nextPartNumber": null
    }))
    .unwrap();
    assert_eq!(parts.parts.len(), 2);
    assert_eq!(parts.parts[0].content_sha1, None);
    assert_eq!(parts.parts[0].upload_timestamp, None);
    assert_eq!(parts.next_part_number, None);
}

#[test]
fn an_authorization_with_only_what_is_needed_reads() {
    let a: AuthorizeResponse = serde_json::from_value(json!({
        "accountId": "acc", "authorizationToken": "t",
        "apiInfo": {"storageApi": {"apiUrl": "https://a", "downloadUrl": "https://d",
            "recommendedPartSize": null, "allowed": null, "s3ApiUrl": null, "infoType": "storageApi"},
            "groupsApi": {}}
    }))
    .unwrap();
    let api = a.api_info.storage_api;
    assert_eq!(api.recommended_part_size, 100_000_000);
    assert_eq!(api.absolute_minimum_part_size, 5_000_000);
    assert!(api.allowed.buckets.is_none() && api.allowed.capabilities.is_empty());
    let a: AuthorizeResponse = serde_json::from_value(json!({
        "accountId": "acc", "authorizationToken": "t",
        "apiInfo": {"storageApi": {"apiUrl": "https://a", "downloadUrl": "https://d",
            "allowed": {"buckets": [{"id": "b", "name": null}], "capabilities": ["listFiles", 3, "someNewCapability"], "namePrefix": null}}}
    }))
    .unwrap();
    let allowed = a.api_info.storage_api.allowed;
    assert_eq!(allowed.buckets.unwrap()[0].name, None);
    assert_eq!(allowed.capabilities, vec!["listFiles", "someNewCapability"]);
    assert_eq!(allowed.name_prefix, None);
}

#[test]
fn error_bodies_with_null_fields_read() {
    let e: ErrorBody =
        serde_json::from_value(json!({"status": 503, "code": null, "message": null})).unwrap();
    assert_eq!((e.code.as_str(), e.message.as_str()), ("", ""));
}

#[test]
fn a_retention_update_answer_without_a_readable_retention_holds_what_was_sent() {
    use crate::b2::calls::UpdateFileRetentionAnswer;
    use crate::b2::object_lock::Retention;
    let sent = Retention {
        mode: RetentionMode::Governance,
        retain_until_timestamp: 50,
    };
    for answer in [
        json!({}),
        json!({"fileRetention": null}),
        json!({"fileRetention": {"mode": null}}),
        json!({"fileRetention": {"mode": "governance", "retainUntilTimestamp": null}}),
    ] {
        let a: UpdateFileRetentionAnswer = serde_json::from_value(answer.clone()).unwrap();
        assert_eq!(a.held(&sent), sent, "{answer}");
    }
    let a: UpdateFileRetentionAnswer = serde_json::from_value(
        json!({"fileRetention": {"mode": "compliance", "retainUntilTimestamp": 70}}),
    )
    .unwrap();
    assert_eq!(a.held(&sent).mode, RetentionMode::Compliance);
    assert_eq!(a.held(&sent).retain_until_timestamp, 70);
}
