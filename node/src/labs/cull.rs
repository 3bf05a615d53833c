//! Culling idle labs by what their kernels do, never by proxy traffic: a lab whose kernel is busy
//! is never culled, however long it has run; a lab idle for the configured time is warned first
//! and stopped after, its workspace kept, so starting it again gives back the same files.
//!
//! Activity is read from the lab's Jupyter Server: `api/status` (the last activity the server
//! saw: requests, kernel messages) and `api/kernels` (each kernel's state and last activity).

use std::time::{Duration, SystemTime};

use serde::Deserialize;

/// When labs are culled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CullPolicy {
    /// Idle this long, a lab is stopped (`None`: never).
    pub idle: Option<Duration>,
    /// How long before stopping its owner is warned.
    pub warning: Duration,
}

impl CullPolicy {
    /// How often labs are looked at: often enough that the warning comes in time.
    pub fn every(&self) -> Duration {
        (self.warning / 4).clamp(Duration::from_millis(500), Duration::from_secs(30))
    }
}

/// What a lab's server says of its use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// A kernel is running code.
    pub busy: bool,
    /// The last time anything happened.
    pub last: SystemTime,
}

#[derive(Deserialize)]
struct Status {
    last_activity: Option<String>,
}

#[derive(Deserialize)]
struct Kernel {
    execution_state: Option<String>,
    last_activity: Option<String>,
}

fn time(s: &Option<String>) -> Option<SystemTime> {
    s.as_deref()
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
}

/// The activity in a server's `api/status` and `api/kernels` answers, if they parse.
pub fn activity(status: &[u8], kernels: &[u8]) -> Option<Activity> {
    let status: Status = serde_json::from_slice(status).ok()?;
    let kernels: Vec<Kernel> = serde_json::from_slice(kernels).ok()?;
    let busy = kernels
        .iter()
        .any(|k| matches!(k.execution_state.as_deref(), Some("busy" | "starting")));
    let last = std::iter::once(time(&status.last_activity))
        .chain(kernels.iter().map(|k| time(&k.last_activity)))
        .flatten()
        .max()?;
    Some(Activity { busy, last })
}

/// What to do with a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// In use, or not idle for long.
    Keep,
    /// Tell its owner it stops at this time unless used.
    Warn(SystemTime),
    /// Stop it: idle this long.
    Stop(Duration),
}

/// The verdict on a lab with `activity` at `now`.
pub fn judge(policy: &CullPolicy, activity: Activity, now: SystemTime) -> Verdict {
    let Some(limit) = policy.idle else {
        return Verdict::Keep;
    };
    if activity.busy {
        return Verdict::Keep;
    }
    let idle = now.duration_since(activity.last).unwrap_or_default();
    if idle >= limit {
        Verdict::Stop(idle)
    } else if idle + policy.warning >= limit {
        Verdict::Warn(activity.last + limit)
    } else {
        Verdict::Keep
    }
}

/// A time as people read it (UTC, to the second).
pub fn when(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: CullPolicy = CullPolicy {
        idle: Some(Duration::from_secs(3600)),
        warning: Duration::from_secs(600),
    };

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn idle_labs_are_warned_then_stopped() {
        let quiet = Activity {
            busy: false,
            last: at(0),
        };
        assert_eq!(judge(&POLICY, quiet, at(100)), Verdict::Keep);
        assert_eq!(judge(&POLICY, quiet, at(3000)), Verdict::Warn(at(3600)));
        assert_eq!(
            judge(&POLICY, quiet, at(3601)),
            Verdict::Stop(Duration::from_secs(3601))
        );
    }

    #[test]
    fn a_busy_kernel_is_never_culled() {
        let busy = Activity {
            busy: true,
            last: at(0),
        };
        assert_eq!(judge(&POLICY, busy, at(100_000)), Verdict::Keep);
        let never = CullPolicy {
            idle: None,
            ..POLICY
        };
        let quiet = Activity {
            busy: false,
            last: at(0),
        };
        assert_eq!(judge(&never, quiet, at(100_000)), Verdict::Keep);
    }

    #[test]
    fn activity_is_the_latest_of_server_and_kernels() {
        let status = br#"{"started": "2026-12-05T10:00:00.000000Z", "last_activity": "2026-12-05T10:05:00.123456Z", "connections": 0, "kernels": 1}"#;
        let kernels = br#"[{"id": "k", "name": "python3", "last_activity": "2026-12-05T10:07:30.5Z", "execution_state": "idle", "connections": 1}]"#;
        let a = activity(status, kernels).expect("parses");
        assert!(!a.busy);
        assert_eq!(when(a.last), "2026-12-05T10:07:30Z");
        let busy =
            br#"[{"id": "k", "last_activity": "2026-12-05T10:01:00Z", "execution_state": "busy"}]"#;
        let a = activity(status, busy).expect("parses");
        assert!(a.busy);
        assert_eq!(when(a.last), "2026-12-05T10:05:00Z");
        assert_eq!(activity(b"not json", kernels), None);
        assert_eq!(activity(status, b"{}"), None);
    }
}
