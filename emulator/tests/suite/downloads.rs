//! Downloads: headers, Range, public buckets, by id, and corrupted content.

use serde_json::json;

use crate::common::*;

#[test]
fn download_headers_and_ranges() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let data = content(1000, 5);
    let name = "dir/naïve name.txt";
    let (url, token) = b2.upload_url(&bucket_id);
    let (status, up) = upload_to(
        &url,
        &token,
        name,
        &data,
        &[("X-Bz-Info-author", "J%C3%B6rg")],
    );
    assert_eq!(status, 200, "{up}");

    let get = |range: Option<&str>| {
        let mut req = http()
            .get(format!("{}/file/{BUCKET}/{}", emu.url(), encode(name)))
            .header("Authorization", &b2.token);
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        req.send().unwrap()
    };
    let resp = get(None);
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-length"], "1000");
    assert_eq!(h["content-type"], "text/plain");
    assert_eq!(h["x-bz-file-name"], "dir/na%C3%AFve%20name.txt");
    assert_eq!(h["x-bz-file-id"], up["fileId"].as_str().unwrap());
    assert_eq!(h["x-bz-content-sha1"], sha1_hex(&data).as_str());
    assert_eq!(
        h["x-bz-upload-timestamp"],
        up["uploadTimestamp"].to_string().as_str()
    );
    assert_eq!(h["x-bz-info-author"], "J%C3%B6rg");
    assert_eq!(resp.bytes().unwrap().as_ref(), &data[..]);

    for (range, first, last) in [
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=900-5000", 900, 999),
    ] {
        let resp = get(Some(range));
        assert_eq!(resp.status().as_u16(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {first}-{last}/1000").as_str()
        );
        assert_eq!(
            resp.headers()["content-length"],
            (last - first + 1).to_string().as_str()
        );
        assert_eq!(
            resp.bytes().unwrap().as_ref(),
            &data[first..=last],
            "{range}"
        );
    }
    let resp = get(Some("bytes=1000-"));
    assert_eq!(resp.status().as_u16(), 416);
    let (_, v) = status_json(resp);
    assert_eq!(v["code"], "range_not_satisfiable");

    let head = http()
        .head(format!("{}/file/{BUCKET}/{}", emu.url(), encode(name)))
        .header("Authorization", &b2.token)
        .send()
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers()["content-length"], "1000");
    assert_eq!(head.bytes().unwrap().len(), 0);

    assert_eq!(b2.download(BUCKET, "missing").status().as_u16(), 404);
    assert_eq!(b2.download("no-such-bucket", "x").status().as_u16(), 404);
    let counts = emu.counts();
    assert_eq!(counts.get("b2_download_file_by_name"), 9);
    assert_eq!(counts.bytes_sent, 1000 + 10 + 10 + 5 + 100);
}

#[test]
fn private_buckets_need_a_token_and_public_ones_do_not() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    b2.upload_ok(&bucket_id, "p", b"public?");
    let anonymous = || {
        http()
            .get(format!("{}/file/{BUCKET}/p", emu.url()))
            .send()
            .unwrap()
    };
    assert_eq!(anonymous().status().as_u16(), 401);
    // The token may also ride in the query string.
    let resp = http()
        .get(format!(
            "{}/file/{BUCKET}/p?Authorization={}",
            emu.url(),
            b2.token
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    emu.update_bucket(BUCKET, Some("allPublic"), None);
    assert_eq!(anonymous().bytes().unwrap().as_ref(), b"public?");
    emu.update_bucket(BUCKET, Some("allPrivate"), None);
    assert_eq!(anonymous().status().as_u16(), 401);
}

#[test]
fn download_by_id() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let old = b2.upload_ok(&bucket_id, "v", b"old");
    b2.upload_ok(&bucket_id, "v", b"new");
    let hide = b2.ok(
        "b2_hide_file",
        json!({"bucketId": bucket_id, "fileName": "v"}),
    );
    let by_id = |id: &str| {
        http()
            .get(format!(
                "{}/b2api/v2/b2_download_file_by_id?fileId={id}",
                emu.url()
            ))
            .header("Authorization", &b2.token)
            .send()
            .unwrap()
    };
    // An old version stays downloadable by id even when the name is hidden.
    let resp = by_id(old["fileId"].as_str().unwrap());
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), b"old");
    assert_eq!(
        by_id(hide["fileId"].as_str().unwrap()).status().as_u16(),
        404
    );
    assert_eq!(
        by_id("4_zdeadbeef_f0000000000000999").status().as_u16(),
        404
    );
    assert_eq!(b2.download(BUCKET, "v").status().as_u16(), 404);
    let resp = http()
        .post(format!("{}/b2api/v1/b2_download_file_by_id", emu.url()))
        .header("Authorization", &b2.token)
        .json(&json!({"fileId": old["fileId"]}))
        .send()
        .unwrap();
    assert_eq!(resp.bytes().unwrap().as_ref(), b"old");
    assert_eq!(emu.counts().get("b2_download_file_by_id"), 4);
}

#[test]
fn corrupt_file_keeps_the_recorded_sha1() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let data = content(4096, 9);
    b2.upload_ok(&bucket_id, "c", &data);
    emu.corrupt_file(BUCKET, "c");
    let resp = b2.download(BUCKET, "c");
    let sha1 = resp.headers()["x-bz-content-sha1"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = resp.bytes().unwrap();
    assert_eq!(sha1, sha1_hex(&data));
    assert_eq!(body.len(), data.len());
    assert_ne!(sha1_hex(&body), sha1);
    let differing = body.iter().zip(&data).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 1);
}
