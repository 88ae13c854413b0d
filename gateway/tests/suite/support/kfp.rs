//! The KFP stand-in (`pipeline-svc/tests/kfp/standin.py`): a child process serving KFP's v2beta1 API, checking
//! requests against the `kfp-server-api` models, with control routes for faults and outcomes.

use std::{process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running stand-in.
pub struct StandIn {
    _child: tokio::process::Child,
    pub url: String,
    http: reqwest::Client,
}

impl StandIn {
    /// Starts the stand-in with `args` under the Python of `HIGHWIND_TEST_KFP_VENV` (which has kfp-server-api);
    /// `None` when no such environment is configured (a failure under `HIGHWIND_REQUIRE_KFP=1`).
    pub async fn start(args: &[&str]) -> Option<Self> {
        super::kfp_path()?;
        let venv = std::env::var("HIGHWIND_TEST_KFP_VENV").ok()?;
        let script = format!("{}/../pipeline-svc/tests/kfp/standin.py", env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new(format!("{venv}/bin/python"))
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the KFP stand-in");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("stand-in starts in time")
            .expect("stand-in output")
            .expect("stand-in prints its address");
        let url = line.strip_prefix("listening on ").expect("address line").to_owned();
        Some(Self { _child: child, url, http: reqwest::Client::new() })
    }

    async fn control(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_standin/{path}", self.url);
        let request = match body {
            Some(body) => self.http.post(url).json(&body),
            None => self.http.get(url),
        };
        request.send().await.expect("control call").json().await.expect("control answer")
    }

    /// The next calls of `route` (a kfp-server-api method name, e.g. `run_service_create_run`) meet `faults`
    /// in order: `"500"`, `"404"`, `"409"`, `"503"`, or `"slow:SECONDS"` (done, answered late).
    pub async fn faults(&self, route: &str, faults: &[&str]) {
        self.control("faults", Some(json!({"route": route, "faults": faults}))).await;
    }

    /// Runs created from now on end this way: `SUCCEEDED`, `FAILED` or `RUNNING` (never ends by itself).
    pub async fn outcome(&self, outcome: &str) {
        self.control("outcome", Some(json!({"outcome": outcome}))).await;
    }

    /// Every run the stand-in holds, oldest first.
    pub async fn runs(&self) -> Vec<Value> {
        self.control("runs", None).await.as_array().cloned().unwrap_or_default()
    }

    /// Every pipeline with its versions' names and caching.
    pub async fn pipelines(&self) -> Vec<Value> {
        self.control("pipelines", None).await.as_array().cloned().unwrap_or_default()
    }

    /// Every API request received: method, path, query, authorization and kubeflow-userid headers.
    pub async fn requests(&self) -> Vec<Value> {
        self.control("requests", None).await.as_array().cloned().unwrap_or_default()
    }

    /// The backend configuration pointing at this stand-in, polling fast.
    pub fn config(&self) -> pipeline_svc::kfp::KfpConfig {
        pipeline_svc::kfp::KfpConfig {
            url: self.url.clone(),
            poll_interval_ms: 50,
            request_timeout_ms: 2_000,
            ..Default::default()
        }
    }
}
