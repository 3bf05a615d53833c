//! How the `orrery` binary logs: human-readable text, or one JSON object a line for log
//! collectors (Loki, Elasticsearch, journald's JSON export), always to standard error.
//!
//! The format comes from `ORRERY_LOG_FORMAT` if set, else from `[log] format` in the node's
//! configuration, else text. The level filter comes from `ORRERY_LOG` (default `warn`).
//! A JSON line always carries `timestamp`, `level`, `target`, `message` and the event's fields
//! at the top level, and the current span's fields under `span`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The environment variable that chooses the log format (`text` or `json`).
pub const FORMAT_ENV: &str = "ORRERY_LOG_FORMAT";
/// The environment variable that sets the level filter (`EnvFilter` syntax, e.g. `info`).
pub const FILTER_ENV: &str = "ORRERY_LOG";

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// A log format name that is neither `text` nor `json`.
#[derive(Debug, thiserror::Error)]
#[error("unknown log format {0:?}: use \"text\" or \"json\"")]
pub struct UnknownFormat(String);

impl FromStr for LogFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// The format to use: the environment's if it names one, else the configuration's. An
/// unknown name in the environment is reported and ignored.
pub fn choose(
    env: Option<&str>,
    configured: Option<LogFormat>,
) -> (LogFormat, Option<UnknownFormat>) {
    match env.map(LogFormat::from_str) {
        Some(Ok(f)) => (f, None),
        Some(Err(e)) => (configured.unwrap_or_default(), Some(e)),
        None => (configured.unwrap_or_default(), None),
    }
}

/// The level filter from [`FILTER_ENV`], `warn` when unset or invalid.
pub fn filter_from_env() -> EnvFilter {
    EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("warn"))
}

/// A subscriber writing `format` lines that pass `filter` to `writer`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Installs the process-wide subscriber, writing to standard error. Does nothing if one is
/// installed already.
pub fn init(format: LogFormat) {
    let _ = tracing::subscriber::set_global_default(subscriber(
        format,
        filter_from_env(),
        std::io::stderr,
    ));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn log_one(format: LogFormat) -> String {
        let buf = Buffer::default();
        let sub = subscriber(format, EnvFilter::new("info"), buf.clone());
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("sync", peer = "abc123");
            let _g = span.enter();
            tracing::info!(bytes = 42, "sync frame received");
            tracing::debug!("filtered out");
        });
        let bytes = buf.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn a_json_line_carries_level_target_message_and_fields() {
        let out = log_one(LogFormat::Json);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "one line, debug filtered: {out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("the line is JSON");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], module_path!());
        assert_eq!(v["message"], "sync frame received");
        assert_eq!(v["bytes"], 42);
        assert_eq!(v["span"]["peer"], "abc123");
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn text_lines_are_not_json() {
        let out = log_one(LogFormat::Text);
        assert!(out.contains("sync frame received"));
        assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err());
    }

    #[test]
    fn the_environment_overrides_the_configuration() {
        assert_eq!(choose(Some("json"), None).0, LogFormat::Json);
        assert_eq!(
            choose(Some("JSON "), Some(LogFormat::Text)).0,
            LogFormat::Json
        );
        assert_eq!(
            choose(Some("text"), Some(LogFormat::Json)).0,
            LogFormat::Text
        );
        assert_eq!(choose(None, Some(LogFormat::Json)).0, LogFormat::Json);
        assert_eq!(choose(None, None).0, LogFormat::Text);
        let (f, err) = choose(Some("yaml"), Some(LogFormat::Json));
        assert_eq!(f, LogFormat::Json);
        assert!(err.is_some());
    }
}
