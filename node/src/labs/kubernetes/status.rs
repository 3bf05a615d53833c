//! What a lab's pod says of itself: whether it ended and how, whether it was killed for its
//! memory, and why it is not running yet.

use k8s_openapi::api::core::v1::{ContainerState, Pod};

/// Reasons a container waits for that do not pass by waiting (the lab fails at once).
const HOPELESS: [&str; 6] = [
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

fn states(pod: &Pod) -> impl Iterator<Item = &ContainerState> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .flat_map(|c| {
            [c.state.as_ref(), c.last_state.as_ref()]
                .into_iter()
                .flatten()
        })
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// How the pod ended, if it has.
pub fn ended(pod: &Pod) -> Option<String> {
    let phase = phase(pod);
    if phase != "Succeeded" && phase != "Failed" {
        return None;
    }
    let how = states(pod).find_map(|s| s.terminated.as_ref()).map(|t| {
        let mut how = format!("exit code {}", t.exit_code);
        if let Some(reason) = &t.reason {
            how.push_str(&format!(", {reason}"));
        }
        if let Some(message) = t.message.as_deref().filter(|m| !m.is_empty()) {
            how.push_str(&format!(": {message}"));
        }
        how
    });
    let pod_reason = pod.status.as_ref().and_then(|s| s.message.clone());
    Some(format!(
        "its pod {}",
        how.or(pod_reason).map_or_else(
            || phase.to_lowercase(),
            |h| format!("{} ({h})", phase.to_lowercase())
        )
    ))
}

/// Whether a container of the pod was killed for exceeding its memory.
pub fn out_of_memory(pod: &Pod) -> bool {
    states(pod)
        .filter_map(|s| s.terminated.as_ref())
        .any(|t| t.reason.as_deref() == Some("OOMKilled"))
}

/// Why the pod will not start, if waiting will not help.
pub fn hopeless(pod: &Pod) -> Option<String> {
    states(pod)
        .filter_map(|s| s.waiting.as_ref())
        .find(|w| w.reason.as_deref().is_some_and(|r| HOPELESS.contains(&r)))
        .map(|w| {
            format!(
                "{}: {}",
                w.reason.as_deref().unwrap_or_default(),
                w.message.as_deref().unwrap_or("no message")
            )
        })
}

/// Why the pod is not running yet (for a start that times out).
pub fn pending(pod: &Pod) -> String {
    let waiting = states(pod)
        .filter_map(|s| s.waiting.as_ref())
        .find_map(|w| w.reason.clone());
    let condition = pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.status == "False" && c.message.is_some())
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or(&c.type_),
                c.message.as_deref().unwrap_or_default()
            )
        });
    condition
        .or(waiting)
        .unwrap_or_else(|| format!("it is {}", phase(pod).to_lowercase()))
}

/// The pod's address once it runs.
pub fn address(pod: &Pod) -> Option<std::net::IpAddr> {
    if phase(pod) != "Running" {
        return None;
    }
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// How many of its containers run.
pub fn running(pod: &Pod) -> usize {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .count()
}
