//! The job side of the Flink REST API the controller drives: cluster
//! overview, jar upload and run (with a caller-chosen job id), savepoints,
//! stop and cancel. Wire shapes were checked against Flink 1.20.5.

use serde::{Deserialize, Serialize};

use super::client::{FlinkRestClient, FlinkRestError};
use crate::flink::status::{JobState, Reported};

/// `/overview`: enough to know the JobManager answers and has slots.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterOverview {
    #[serde(default)]
    pub taskmanagers: u32,
    #[serde(default, rename = "slots-total")]
    pub slots_total: u32,
    #[serde(default, rename = "flink-version")]
    pub flink_version: String,
}

/// `/jobs/:jid`, reduced to what status needs.
#[derive(Debug, Clone, Deserialize)]
pub struct FlinkJob {
    pub jid: String,
    #[serde(default)]
    pub name: String,
    pub state: Reported<JobState>,
    #[serde(default, rename = "start-time")]
    pub start_time: i64,
}

impl FlinkJob {
    /// States a job never leaves.
    pub fn is_terminal(&self) -> bool {
        self.state.known().is_some_and(JobState::is_terminal)
    }

    pub fn is(&self, state: JobState) -> bool {
        self.state == state
    }
}

/// Body of `POST /jars/:jarid/run`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
    pub program_args_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// 32 hex digits; Flink refuses a second job with the same id.
    pub job_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_path: Option<String>,
    pub allow_non_restored_state: bool,
}

/// Where an asynchronous savepoint (or stop-with-savepoint) stands.
#[derive(Debug, Clone, PartialEq)]
pub enum SavepointProgress {
    InProgress,
    Completed { location: String },
    Failed { cause: String },
}

#[derive(Deserialize)]
struct Upload {
    filename: String,
}

#[derive(Deserialize)]
struct RunAnswer {
    jobid: String,
}

#[derive(Deserialize)]
struct Trigger {
    #[serde(rename = "request-id")]
    request_id: String,
}

#[derive(Deserialize)]
struct OperationStatus {
    status: StatusId,
    #[serde(default)]
    operation: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StatusId {
    id: String,
}

#[derive(Deserialize)]
struct Checkpoints {
    #[serde(default)]
    latest: Option<LatestCheckpoints>,
}

#[derive(Deserialize)]
struct LatestCheckpoints {
    #[serde(default)]
    restored: Option<Restored>,
}

#[derive(Deserialize)]
struct Restored {
    #[serde(default)]
    external_path: Option<String>,
}

impl FlinkRestClient {
    pub async fn overview(&self) -> Result<ClusterOverview, FlinkRestError> {
        let url = self.url(&["overview"]);
        self.send_json(self.http.get(url.clone()), url).await
    }

    /// The job with this id, or `None` when the JobManager does not know it.
    pub async fn job_state(&self, jid: &str) -> Result<Option<FlinkJob>, FlinkRestError> {
        let url = self.url(&["jobs", jid]);
        match self.send_json(self.http.get(url.clone()), url).await {
            Ok(j) => Ok(Some(j)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Uploads a jar; returns the id `run_jar` takes.
    pub async fn upload_jar(
        &self,
        file_name: &str,
        jar: Vec<u8>,
    ) -> Result<String, FlinkRestError> {
        let url = self.url(&["jars", "upload"]);
        let part = reqwest::multipart::Part::bytes(jar)
            .file_name(file_name.to_owned())
            .mime_str("application/x-java-archive")
            .map_err(|e| FlinkRestError::Client(e.to_string()))?;
        let form = reqwest::multipart::Form::new().part("jarfile", part);
        let up: Upload = self
            .send_json(self.http.post(url.clone()).multipart(form), url)
            .await?;
        // Flink answers with the stored path; the id is its last segment.
        Ok(up
            .filename
            .rsplit('/')
            .next()
            .unwrap_or(&up.filename)
            .to_owned())
    }

    /// Runs an uploaded jar; returns the job id Flink reports.
    pub async fn run_jar(&self, jar_id: &str, run: &RunRequest) -> Result<String, FlinkRestError> {
        let url = self.url(&["jars", jar_id, "run"]);
        let answer: RunAnswer = self
            .send_json(self.http.post(url.clone()).json(run), url)
            .await?;
        Ok(answer.jobid)
    }

    pub async fn delete_jar(&self, jar_id: &str) -> Result<(), FlinkRestError> {
        let url = self.url(&["jars", jar_id]);
        let _: serde_json::Value = self.send_json(self.http.delete(url.clone()), url).await?;
        Ok(())
    }

    /// Stops the job with a final savepoint; returns the trigger id.
    pub async fn stop_with_savepoint(
        &self,
        jid: &str,
        target_directory: Option<&str>,
    ) -> Result<String, FlinkRestError> {
        let url = self.url(&["jobs", jid, "stop"]);
        let body = serde_json::json!({"targetDirectory": target_directory, "drain": false});
        let t: Trigger = self
            .send_json(self.http.post(url.clone()).json(&body), url)
            .await?;
        Ok(t.request_id)
    }

    /// Takes a savepoint and keeps the job running; returns the trigger id.
    pub async fn trigger_savepoint(
        &self,
        jid: &str,
        target_directory: Option<&str>,
    ) -> Result<String, FlinkRestError> {
        self.trigger_savepoint_as(jid, target_directory, None).await
    }

    /// As [`Self::trigger_savepoint`], in a given format (`CANONICAL`,
    /// `NATIVE`); Flink's default when `None`.
    pub async fn trigger_savepoint_as(
        &self,
        jid: &str,
        target_directory: Option<&str>,
        format_type: Option<&str>,
    ) -> Result<String, FlinkRestError> {
        let url = self.url(&["jobs", jid, "savepoints"]);
        let mut body =
            serde_json::json!({"target-directory": target_directory, "cancel-job": false});
        if let Some(format) = format_type {
            body["formatType"] = serde_json::Value::String(format.to_owned());
        }
        let t: Trigger = self
            .send_json(self.http.post(url.clone()).json(&body), url)
            .await?;
        Ok(t.request_id)
    }

    pub async fn savepoint_progress(
        &self,
        jid: &str,
        trigger: &str,
    ) -> Result<SavepointProgress, FlinkRestError> {
        let url = self.url(&["jobs", jid, "savepoints", trigger]);
        let s: OperationStatus = self.send_json(self.http.get(url.clone()), url).await?;
        Ok(progress_of(s))
    }

    /// Triggers a full checkpoint of a running job; returns the trigger id.
    pub async fn trigger_checkpoint(&self, jid: &str) -> Result<String, FlinkRestError> {
        let url = self.url(&["jobs", jid, "checkpoints"]);
        let body = serde_json::json!({"checkpointType": "FULL"});
        let t: Trigger = self
            .send_json(self.http.post(url.clone()).json(&body), url)
            .await?;
        Ok(t.request_id)
    }

    /// Where a triggered checkpoint stands; once complete, its location
    /// (`external_path` of the checkpoint's details).
    pub async fn checkpoint_progress(
        &self,
        jid: &str,
        trigger: &str,
    ) -> Result<SavepointProgress, FlinkRestError> {
        let url = self.url(&["jobs", jid, "checkpoints", trigger]);
        let s: OperationStatus = self.send_json(self.http.get(url.clone()), url).await?;
        let id = (s.status.id == "COMPLETED")
            .then(|| s.operation.as_ref()?.get("checkpointId")?.as_u64())
            .flatten();
        let Some(id) = id else {
            return Ok(progress_of(s));
        };
        // The statistics of a just-completed checkpoint reach the REST API
        // a moment later (measured on Flink 1.20: a 404 at first).
        let url = self.url(&["jobs", jid, "checkpoints", "details", &id.to_string()]);
        let details: serde_json::Value = match self.send_json(self.http.get(url.clone()), url).await
        {
            Err(e) if e.is_not_found() => return Ok(SavepointProgress::InProgress),
            other => other?,
        };
        let status = details.get("status").and_then(|s| s.as_str());
        let path = details.get("external_path").and_then(|p| p.as_str());
        Ok(match (status, path) {
            (Some("COMPLETED"), Some(path)) => SavepointProgress::Completed {
                location: path.to_owned(),
            },
            (Some("FAILED"), _) => SavepointProgress::Failed {
                cause: details
                    .get("failure_message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("the checkpoint failed")
                    .to_owned(),
            },
            (Some("COMPLETED"), None) => SavepointProgress::Failed {
                cause: format!("checkpoint {id} completed without an external path"),
            },
            _ => SavepointProgress::InProgress,
        })
    }

    /// Cancels the job (no savepoint).
    pub async fn cancel(&self, jid: &str) -> Result<(), FlinkRestError> {
        let mut url = self.url(&["jobs", jid]);
        url.set_query(Some("mode=cancel"));
        let _: serde_json::Value = self.send_json(self.http.patch(url.clone()), url).await?;
        Ok(())
    }

    /// The first line of the job's root exception (`/jobs/:jid/exceptions`),
    /// what a user needs to see why it failed.
    pub async fn root_exception(&self, jid: &str) -> Result<Option<String>, FlinkRestError> {
        let url = self.url(&["jobs", jid, "exceptions"]);
        let v: serde_json::Value = self.send_json(self.http.get(url.clone()), url).await?;
        Ok(root_exception_of(&v))
    }

    /// The savepoint or checkpoint the job was restored from, if any.
    pub async fn restored_from(&self, jid: &str) -> Result<Option<String>, FlinkRestError> {
        let url = self.url(&["jobs", jid, "checkpoints"]);
        let c: Checkpoints = self.send_json(self.http.get(url.clone()), url).await?;
        Ok(c.latest
            .and_then(|l| l.restored)
            .and_then(|r| r.external_path))
    }
}

/// How often the waits below look again.
const POLL: std::time::Duration = std::time::Duration::from_millis(400);

impl FlinkRestClient {
    /// Polls a savepoint trigger until it completes or fails; `InProgress`
    /// when `timeout` passes first.
    pub async fn await_savepoint(
        &self,
        jid: &str,
        trigger: &str,
        timeout: std::time::Duration,
    ) -> Result<SavepointProgress, FlinkRestError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let progress = self.savepoint_progress(jid, trigger).await?;
            if progress != SavepointProgress::InProgress || std::time::Instant::now() > deadline {
                return Ok(progress);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the job is FINISHED, CANCELED or FAILED (or unknown);
    /// `false` when `timeout` passes first.
    pub async fn await_terminal(
        &self,
        jid: &str,
        timeout: std::time::Duration,
    ) -> Result<bool, FlinkRestError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.job_state(jid).await? {
                None => return Ok(true),
                Some(j) if j.is_terminal() => return Ok(true),
                Some(_) if std::time::Instant::now() > deadline => return Ok(false),
                Some(_) => tokio::time::sleep(POLL).await,
            }
        }
    }
}

fn progress_of(s: OperationStatus) -> SavepointProgress {
    if s.status.id != "COMPLETED" {
        return SavepointProgress::InProgress;
    }
    let op = s.operation.unwrap_or_default();
    if let Some(location) = op.get("location").and_then(|l| l.as_str()) {
        return SavepointProgress::Completed {
            location: location.to_owned(),
        };
    }
    let cause = op
        .get("failure-cause")
        .and_then(|c| c.get("stack-trace").or_else(|| c.get("class")))
        .and_then(|c| c.as_str())
        .and_then(|c| c.lines().next())
        .unwrap_or("the savepoint failed without a cause")
        .to_owned();
    SavepointProgress::Failed { cause }
}

/// The root exception's first line: the 1.x `root-exception` field, else the
/// newest entry of `exceptionHistory`.
fn root_exception_of(v: &serde_json::Value) -> Option<String> {
    let text = v
        .get("root-exception")
        .and_then(serde_json::Value::as_str)
        .or_else(|| {
            v.pointer("/exceptionHistory/entries/0/stacktrace")
                .and_then(serde_json::Value::as_str)
        })?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_root_exception_is_its_first_line() {
        let v = serde_json::json!({"root-exception": "org.apache.flink.runtime.JobException: Recovery is suppressed\n\tat org.apache...",
            "exceptionHistory": {"entries": []}});
        assert_eq!(
            root_exception_of(&v).as_deref(),
            Some("org.apache.flink.runtime.JobException: Recovery is suppressed")
        );
        let v = serde_json::json!({"exceptionHistory": {"entries": [{"stacktrace": "java.lang.ClassNotFoundException: com.example.Nope\n\tat x"}]}});
        assert_eq!(
            root_exception_of(&v).as_deref(),
            Some("java.lang.ClassNotFoundException: com.example.Nope")
        );
        assert_eq!(root_exception_of(&serde_json::json!({})), None);
    }
    use super::*;

    fn status(json: &str) -> SavepointProgress {
        progress_of(serde_json::from_str(json).expect("valid test JSON"))
    }

    #[test]
    fn savepoint_answers_as_flink_sends_them() {
        assert_eq!(
            status(r#"{"status":{"id":"IN_PROGRESS"},"operation":null}"#),
            SavepointProgress::InProgress
        );
        assert_eq!(
            status(
                r#"{"status":{"id":"COMPLETED"},"operation":{"location":"file:/sp/savepoint-1"}}"#
            ),
            SavepointProgress::Completed {
                location: "file:/sp/savepoint-1".into()
            }
        );
        assert_eq!(
            status(
                r#"{"status":{"id":"COMPLETED"},"operation":{"failure-cause":{"class":"x","stack-trace":"java.lang.Exception: no dir\n\tat a"}}}"#
            ),
            SavepointProgress::Failed {
                cause: "java.lang.Exception: no dir".into()
            }
        );
    }

    #[test]
    fn run_request_uses_flink_field_names() {
        let body = serde_json::to_value(RunRequest {
            entry_class: Some("a.B".into()),
            program_args_list: vec!["--x".into()],
            parallelism: Some(2),
            job_id: "00000000000000000000000000000001".into(),
            savepoint_path: None,
            allow_non_restored_state: false,
        })
        .expect("serializable");
        assert_eq!(
            body,
            serde_json::json!({"entryClass":"a.B","programArgsList":["--x"],"parallelism":2,
                "jobId":"00000000000000000000000000000001","allowNonRestoredState":false})
        );
    }
}
