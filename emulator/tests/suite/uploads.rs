//! Single-file uploads: SHA1 checks, Content-Length, names, info headers, token use.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[test]
fn a_sha1_mismatch_in_the_header_stores_nothing() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let data = content(100_000, 1);
    let wrong = sha1_hex(b"something else");
    let (status, v) = upload_to(
        &url,
        &token,
        "f.bin",
        &data,
        &[("X-Bz-Content-Sha1", &wrong)],
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    assert!(emu.file_versions(BUCKET).is_empty());
    assert_eq!(blob_count(&emu), 0);
    assert_eq!(temp_count(&emu), 0);
    // The URL still works for a correct upload, and upper-case hex is accepted.
    let upper = sha1_hex(&data).to_uppercase();
    let (status, v) = upload_to(
        &url,
        &token,
        "f.bin",
        &data,
        &[("X-Bz-Content-Sha1", &upper)],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["contentSha1"], sha1_hex(&data));
    assert_eq!(v["contentLength"], 100_000);
    assert_eq!(v["size"], 100_000);
    assert_eq!(v["action"], "upload");
    assert_eq!(v["contentType"], "application/octet-stream");
}

#[test]
fn hex_digits_at_end_is_verified() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let data = content(5000, 2);
    let send = |body: Vec<u8>| {
        status_json(
            http()
                .post(&url)
                .header("Authorization", &token)
                .header("X-Bz-File-Name", "end.txt")
                .header("Content-Type", "text/plain")
                .header("X-Bz-Content-Sha1", "hex_digits_at_end")
                .body(body)
                .send()
                .unwrap(),
        )
    };
    let mut good = data.clone();
    good.extend_from_slice(sha1_hex(&data).as_bytes());
    let mut bad = data.clone();
    bad.extend_from_slice(sha1_hex(b"nope").as_bytes());

    let (status, v) = send(bad);
    assert_eq!(status, 400, "{v}");
    let (status, v) = send(b"short".to_vec());
    assert_eq!(status, 400, "{v}");
    assert!(emu.file_versions(BUCKET).is_empty());
    assert_eq!(blob_count(&emu), 0);

    let (status, v) = send(good);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["contentLength"], 5000);
    assert_eq!(v["contentSha1"], sha1_hex(&data));
    let body = b2.download(BUCKET, "end.txt").bytes().unwrap();
    assert_eq!(body.as_ref(), &data[..]);
}

#[test]
fn do_not_verify_is_accepted_without_a_checksum() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let (status, v) = upload_to(
        &url,
        &token,
        "nv",
        b"abc",
        &[("X-Bz-Content-Sha1", "do_not_verify")],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["contentSha1"], "none");
    let (status, _) = upload_to(
        &url,
        &token,
        "nv",
        b"abc",
        &[("X-Bz-Content-Sha1", "12345")],
    );
    assert_eq!(status, 400);
}

#[test]
fn content_length_is_required_and_exact() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let head = |url: &str, token: &str, length_header: &str| {
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nX-Bz-File-Name: cl.bin\r\n\
             Content-Type: b2/x-auto\r\nX-Bz-Content-Sha1: do_not_verify\r\n{length_header}\r\n",
            path_of(url)
        )
    };
    // Declares 100 bytes, sends 50 and half-closes.
    let (url, token) = b2.upload_url(&bucket_id);
    let mut request = head(&url, &token, "Content-Length: 100\r\n").into_bytes();
    request.extend_from_slice(&[b'a'; 50]);
    let answer = raw_exchange(&url, &request, true, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("50 of 100 bytes"), "{answer}");

    // Chunked transfer encoding is refused.
    let (url, token) = b2.upload_url(&bucket_id);
    let mut request = head(&url, &token, "Transfer-Encoding: chunked\r\n").into_bytes();
    request.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
    let answer = raw_exchange(&url, &request, true, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");

    // No length at all.
    let (url, token) = b2.upload_url(&bucket_id);
    let answer = raw_exchange(
        &url,
        head(&url, &token, "").as_bytes(),
        true,
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");

    // More than 5 GB is refused up front.
    let (url, token) = b2.upload_url(&bucket_id);
    let request = head(&url, &token, "Content-Length: 6000000000\r\n");
    let answer = raw_exchange(&url, request.as_bytes(), false, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    assert!(emu.file_versions(BUCKET).is_empty());
    assert_eq!(blob_count(&emu), 0);
    assert_eq!(temp_count(&emu), 0);
}

#[test]
fn file_names_follow_b2_rules() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let send_raw_name = |raw: &str| {
        status_json(
            http()
                .post(&url)
                .header("Authorization", &token)
                .header("X-Bz-File-Name", raw)
                .header("Content-Type", "b2/x-auto")
                .header("X-Bz-Content-Sha1", sha1_hex(b"n"))
                .body("n")
                .send()
                .unwrap(),
        )
        .0
    };
    let too_long = "a".repeat(1025);
    for bad in ["", "a%01b", "del%7F", "bad%zz", "bad%", &too_long, "%FF%FE"] {
        assert_eq!(send_raw_name(bad), 400, "name {bad:?}");
    }
    assert!(emu.file_versions(BUCKET).is_empty());
    let longest = "b".repeat(1024);
    assert_eq!(send_raw_name(&longest), 200);
    // Percent-decoding: %20 is a space, '+' stays '+', UTF-8 is decoded.
    assert_eq!(send_raw_name("dir/a%20b+c%2Bd%E2%82%AC"), 200);
    let names: Vec<String> = emu
        .file_versions(BUCKET)
        .into_iter()
        .map(|v| v.file_name)
        .collect();
    assert!(names.contains(&"dir/a b+c+d€".to_owned()), "{names:?}");
    // JSON names (start_large_file) are plain strings.
    let (status, _) = b2.call(
        "b2_start_large_file",
        json!({"bucketId": bucket_id, "fileName": "tab\there", "contentType": "b2/x-auto"}),
    );
    assert_eq!(status, 400);
    let v = b2.ok(
        "b2_start_large_file",
        json!({"bucketId": bucket_id, "fileName": "plain %20 name", "contentType": "b2/x-auto"}),
    );
    assert_eq!(v["fileName"], "plain %20 name");
}

#[test]
fn info_headers_are_limited_and_decoded() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let headers: Vec<(String, String)> = (0..11)
        .map(|i| (format!("X-Bz-Info-k{i}"), format!("v{i}")))
        .collect();
    let as_refs = |n: usize| -> Vec<(&str, &str)> {
        headers[..n]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    };
    let (status, v) = upload_to(&url, &token, "i", b"i", &as_refs(11));
    assert_eq!(status, 400, "11 info headers: {v}");
    let (status, v) = upload_to(&url, &token, "i", b"i", &as_refs(10));
    assert_eq!(status, 200, "10 info headers: {v}");
    assert_eq!(v["fileInfo"]["k9"], "v9");

    let (status, v) = upload_to(
        &url,
        &token,
        "j",
        b"j",
        &[
            ("X-Bz-Info-src_last_modified_millis", "1700000000000"),
            ("X-Bz-Info-note", "caf%C3%A9%20ok"),
        ],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["fileInfo"]["note"], "café ok");
    assert_eq!(v["fileInfo"]["src_last_modified_millis"], "1700000000000");

    let big = "x".repeat(7000);
    let (status, _) = upload_to(&url, &token, "k", b"k", &[("X-Bz-Info-big", &big)]);
    assert_eq!(status, 400, "name + info over 7000 bytes");
    let mut info = serde_json::Map::new();
    for i in 0..11 {
        info.insert(format!("k{i}"), json!("v"));
    }
    let (status, _) = b2.call(
        "b2_start_large_file",
        json!({"bucketId": bucket_id, "fileName": "l", "contentType": "b2/x-auto", "fileInfo": info}),
    );
    assert_eq!(status, 400, "11 fileInfo entries at start_large_file");
    let (status, _) = b2.call(
        "b2_start_large_file",
        json!({"bucketId": bucket_id, "fileName": "l", "contentType": "b2/x-auto", "fileInfo": {"n": 5}}),
    );
    assert_eq!(status, 400, "fileInfo values must be strings");
    assert_eq!(emu.file_versions(BUCKET).len(), 2);
}

#[test]
fn required_upload_headers() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let base = || {
        http()
            .post(&url)
            .header("Authorization", &token)
            .body("data")
    };
    let sha = sha1_hex(b"data");
    let no_sha = base()
        .header("X-Bz-File-Name", "a")
        .header("Content-Type", "text/plain");
    assert_eq!(no_sha.send().unwrap().status().as_u16(), 400);
    let no_type = base()
        .header("X-Bz-File-Name", "a")
        .header("X-Bz-Content-Sha1", &sha);
    assert_eq!(no_type.send().unwrap().status().as_u16(), 400);
    let no_name = base()
        .header("Content-Type", "text/plain")
        .header("X-Bz-Content-Sha1", &sha);
    assert_eq!(no_name.send().unwrap().status().as_u16(), 400);
    let bad_type = base()
        .header("X-Bz-File-Name", "a")
        .header("Content-Type", "nonsense")
        .header("X-Bz-Content-Sha1", &sha);
    assert_eq!(bad_type.send().unwrap().status().as_u16(), 400);
    assert!(emu.file_versions(BUCKET).is_empty());
}

#[test]
fn one_upload_url_serves_one_upload_at_a_time() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let data = content(2000, 3);

    // The first upload sends its headers and half its body, then pauses.
    let mut first = TcpStream::connect(host_port(&url)).unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nX-Bz-File-Name: first\r\n\
         Content-Type: b2/x-auto\r\nX-Bz-Content-Sha1: {}\r\nContent-Length: {}\r\n\r\n",
        path_of(&url),
        sha1_hex(&data),
        data.len()
    );
    first.write_all(head.as_bytes()).unwrap();
    first.write_all(&data[..1000]).unwrap();
    // The grant is claimed before any body byte is read: wait for the first bytes to
    // arrive rather than for a guessed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while emu.counts().bytes_received == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first upload never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let (status, v) = upload_to(&url, &token, "second", b"second", &[]);
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("in use"), "{v}");

    first.write_all(&data[1000..]).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 12];
    std::io::Read::read_exact(&mut first, &mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    drop(first);

    // Serial reuse of the same URL and token is fine.
    let (status, v) = upload_to(&url, &token, "third", b"third", &[]);
    assert_eq!(status, 200, "{v}");
    let names: Vec<String> = emu
        .file_versions(BUCKET)
        .into_iter()
        .map(|v| v.file_name)
        .collect();
    assert_eq!(names, ["first", "third"]);
}

#[test]
fn malformed_api_requests_are_400s() {
    let emu = start();
    let b2 = B2::master(&emu);
    let send = |body: &'static str| {
        http()
            .post(format!("{}/b2api/v2/b2_list_file_names", emu.url()))
            .header("Authorization", &b2.token)
            .body(body)
            .send()
            .unwrap()
    };
    for body in ["{", "[1,2]", "{\"bucketId\": 5}", "{}", "\"x\""] {
        let (status, v) = status_json(send(body));
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("bad_request")),
            "{body}: {v}"
        );
    }
    let (status, _) = b2.call("b2_list_file_names", json!({"bucketId": "nope"}));
    assert_eq!(status, 400);
    let resp = http()
        .delete(format!("{}/b2api/v2/b2_list_buckets", emu.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let resp = http()
        .get(format!("{}/b2api/v9/b2_list_buckets", emu.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // GET with query parameters works for the list calls.
    let bucket_id = b2.bucket_id(BUCKET);
    b2.upload_ok(&bucket_id, "q", b"q");
    let resp = http()
        .get(format!(
            "{}/b2api/v1/b2_list_file_names?bucketId={bucket_id}&maxFileCount=5",
            emu.url()
        ))
        .header("Authorization", &b2.token)
        .send()
        .unwrap();
    let (status, v) = status_json(resp);
    assert_eq!(status, 200, "{v}");
    assert_eq!(names_of(&v), ["q"]);
}
