//! The emulator runs on its own thread and runtime, so async tests can use it too.

use crate::common::*;

#[tokio::test(flavor = "current_thread")]
async fn usable_from_inside_a_tokio_runtime() {
    let emu = start();
    let resp = reqwest::Client::new()
        .get(format!("{}/b2api/v4/b2_authorize_account", emu.url()))
        .basic_auth(emu.account_id(), Some(emu.application_key()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(emu.counts().get("b2_authorize_account"), 1);
    emu.stop(); // joins the server thread without needing this runtime
}
