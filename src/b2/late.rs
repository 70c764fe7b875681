//! A request given up for a stall after B2 had all of it: not dropped (which would close
//! its connection while B2 may still act on it) but kept running, so that B2's answer,
//! whenever it comes, says what B2 did.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::operation::Operation;

/// Why a request got no answer from its task.
pub enum SendError {
    Http(reqwest::Error),
    /// The task itself ended without one (aborted, or it panicked).
    Lost(String),
}

/// A request running in its own task; dropped, it is aborted (and its connection
/// closed), as a request future dropped in place would be.
pub struct LateAnswer {
    /// None once its answer was taken.
    task: Option<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>>,
    sent: Instant,
}

impl LateAnswer {
    pub fn spawn(req: reqwest::RequestBuilder) -> LateAnswer {
        LateAnswer {
            task: Some(tokio::spawn(req.send())),
            sent: Instant::now(),
        }
    }

    /// B2's answer, or why there is none.
    pub async fn answer(&mut self) -> std::result::Result<reqwest::Response, SendError> {
        let Some(task) = self.task.as_mut() else {
            return Err(SendError::Lost("its answer was already taken".into()));
        };
        let answer = match task.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(SendError::Http(e)),
            Err(e) => Err(SendError::Lost(e.to_string())),
        };
        self.task = None;
        answer
    }

    pub fn abort(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }

    /// What B2 says it did, if its answer comes within `within` of the request being sent
    /// (and before `op` is cancelled) and is a success; `Ok(None)` when B2 refused the
    /// request (so it did nothing); `Err(())` when it is not known (no answer, or one that
    /// cannot be read), so B2 must be asked.
    pub async fn heard_out<T: DeserializeOwned>(
        mut self,
        op: &Operation,
        within: Duration,
    ) -> std::result::Result<Option<T>, ()> {
        let wait = within.saturating_sub(self.sent.elapsed());
        let hearing = async {
            let resp = match tokio::time::timeout(wait, self.answer()).await {
                Ok(Ok(resp)) => resp,
                _ => return Ok(Err(())),
            };
            if !resp.status().is_success() {
                // B2 refused it: nothing stored.
                return Ok(Ok(None));
            }
            Ok(match tokio::time::timeout(wait, resp.bytes()).await {
                Ok(Ok(body)) => serde_json::from_slice(&body).map(Some).map_err(|_| ()),
                _ => Err(()),
            })
        };
        op.or_cancel(hearing).await.unwrap_or(Err(()))
    }
}

impl Drop for LateAnswer {
    fn drop(&mut self) {
        self.abort();
    }
}
