//! The objects a lab is made of in a cluster, as the API server takes them: its pod, the
//! Secret holding its server's token, the claim holding its workspace, and the NetworkPolicy
//! that lets only the node's own pods reach it. Pure: checked by tests against the Kubernetes
//! schemas.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use crate::labs::backend::{BackendError, LabRequest};
use crate::labs::jupyter::{POD_PORT, pod_command};

/// What every lab of this node shares in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSettings {
    /// The node's name among those sharing the namespace (a label value).
    pub node: String,
    /// The image labs run; it has `jupyter-server` on its PATH.
    pub image: String,
    /// The user and group id labs run as.
    pub uid: u32,
    /// The claim holding the node's datasets, mounted read-only.
    pub data_claim: Option<String>,
    /// Where that claim is mounted in the node's own container: datasets live under it.
    pub data_mount: Option<PathBuf>,
    /// The storage class of workspace claims (`None`: the cluster's default).
    pub storage_class: Option<String>,
    /// The size of a workspace claim in bytes.
    pub workspace_bytes: u64,
    /// The labels of the node's own pods: the only pods that may reach a lab.
    pub node_labels: BTreeMap<String, String>,
    /// Where images projects pin may come from (prefixes such as `quay.io/jupyter/`); none:
    /// pinned images are refused, and the node's own image runs no one's pin.
    pub pinned_images: Vec<String>,
}

/// The image a lab of `r` runs: the project's pin when the operator allows where it comes from
/// (its credentials pull it), else the node's.
fn image_of<'a>(settings: &'a PodSettings, r: &'a LabRequest) -> Result<&'a str, BackendError> {
    match r.image.as_deref() {
        None => Ok(&settings.image),
        Some(i)
            if settings
                .pinned_images
                .iter()
                .any(|p| !p.is_empty() && i.starts_with(p.as_str())) =>
        {
            Ok(i)
        }
        Some(i) => Err(BackendError::Cluster(format!(
            "a project pins the image {i}, which this node's operator does not allow ([labs.kubernetes] pinned_images lists where pinned images may come from)"
        ))),
    }
}

/// The name of a lab's pod, Secret and NetworkPolicy.
pub fn name(lab: &str) -> String {
    format!("orrery-lab-{lab}")
}

/// The name of a lab's workspace claim.
pub fn workspace_claim(lab: &str) -> String {
    format!("orrery-lab-{lab}-workspace")
}

/// The label naming a lab.
pub const LAB_LABEL: &str = "orrery.io/lab";
/// The label naming the node a lab belongs to.
pub const NODE_LABEL: &str = "orrery.io/node";

/// The labels of every object of a lab.
pub fn labels(settings: &PodSettings, lab: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "orrery-lab",
        "app.kubernetes.io/managed-by": "orrery",
        NODE_LABEL: settings.node,
        LAB_LABEL: lab,
    })
}

/// The selector of every lab of this node.
pub fn node_selector(settings: &PodSettings) -> String {
    format!(
        "app.kubernetes.io/managed-by=orrery,{NODE_LABEL}={}",
        settings.node
    )
}

fn typed<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Result<T, BackendError> {
    serde_json::from_value(v)
        .map_err(|e| BackendError::Cluster(format!("the lab's {what} could not be described: {e}")))
}

/// Where a dataset on the node's disk is in the data claim.
fn sub_path(settings: &PodSettings, host: &Path) -> Result<String, BackendError> {
    let (Some(claim), Some(mount)) = (&settings.data_claim, &settings.data_mount) else {
        return Err(BackendError::Cluster(
            "labs in the cluster see datasets through a claim: set [labs.kubernetes] data_claim and data_mount".into(),
        ));
    };
    let relative = host.strip_prefix(mount).map_err(|_| {
        BackendError::Cluster(format!(
            "the dataset at {} is outside {}, where the claim {claim} is mounted: labs in the cluster cannot see it",
            host.display(),
            mount.display()
        ))
    })?;
    let relative = relative
        .to_str()
        .filter(|r| !r.split('/').any(|part| part == ".."))
        .ok_or_else(|| {
            BackendError::Cluster(format!("the dataset path {} is not usable", host.display()))
        })?;
    Ok(relative.to_owned())
}

/// The lab's pod: its server on [`POD_PORT`], the workspace at `/home/lab`, each dataset
/// read-only at `/data/<collection>`, `/tmp` in memory (counted against its limit), nothing
/// else writable, no privilege, no service account token, no host namespace.
pub fn pod(settings: &PodSettings, r: &LabRequest) -> Result<Pod, BackendError> {
    let mut env: Vec<Value> = r
        .env
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    env.push(json!({
        "name": "JUPYTER_TOKEN",
        "valueFrom": { "secretKeyRef": { "name": name(&r.lab), "key": "token" } },
    }));
    let mut mounts = vec![
        json!({ "name": "workspace", "mountPath": "/home/lab", "readOnly": r.workspace_read_only }),
        json!({ "name": "tmp", "mountPath": "/tmp" }),
    ];
    let mut volumes = vec![
        json!({ "name": "workspace", "persistentVolumeClaim": { "claimName": workspace_claim(&r.lab) } }),
        json!({ "name": "tmp", "emptyDir": { "medium": "Memory", "sizeLimit": r.tmp_bytes.max(1 << 20).to_string() } }),
    ];
    for v in &r.data {
        mounts.push(json!({
            "name": "data",
            "mountPath": format!("/data/{}", v.collection),
            "subPath": sub_path(settings, &v.host)?,
            "readOnly": true,
        }));
    }
    if let (false, Some(claim)) = (r.data.is_empty(), &settings.data_claim) {
        volumes.push(json!({
            "name": "data",
            "persistentVolumeClaim": { "claimName": claim, "readOnly": true },
        }));
    }
    let mut limits = serde_json::Map::new();
    if r.limits.memory_bytes > 0 {
        limits.insert("memory".into(), json!(r.limits.memory_bytes.to_string()));
    }
    if r.limits.millicores > 0 {
        limits.insert("cpu".into(), json!(format!("{}m", r.limits.millicores)));
    }
    typed(
        "pod",
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": name(&r.lab), "labels": labels(settings, &r.lab) },
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "enableServiceLinks": false,
                "terminationGracePeriodSeconds": 5,
                "securityContext": {
                    "runAsNonRoot": true,
                    "runAsUser": settings.uid,
                    "runAsGroup": settings.uid,
                    "fsGroup": settings.uid,
                    "fsGroupChangePolicy": "OnRootMismatch",
                    "seccompProfile": { "type": "RuntimeDefault" },
                },
                "containers": [{
                    "name": "lab",
                    "image": image_of(settings, r)?,
                    "imagePullPolicy": "IfNotPresent",
                    "command": pod_command(&r.base_url),
                    "workingDir": "/home/lab",
                    "env": env,
                    "ports": [{ "name": "jupyter", "containerPort": POD_PORT, "protocol": "TCP" }],
                    // Requests equal limits: a lab gets what it is promised.
                    "resources": { "limits": limits, "requests": limits },
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "privileged": false,
                        "readOnlyRootFilesystem": true,
                        "capabilities": { "drop": ["ALL"] },
                    },
                    "volumeMounts": mounts,
                }],
                "volumes": volumes,
            },
        }),
    )
}

/// The Secret holding the lab's server token (so it is not in the pod's description).
pub fn secret(settings: &PodSettings, lab: &str, token: &str) -> Result<Secret, BackendError> {
    typed(
        "Secret",
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": name(lab), "labels": labels(settings, lab) },
            "type": "Opaque",
            "stringData": { "token": token },
        }),
    )
}

/// The claim holding the lab's workspace; its size is the workspace's quota. It outlives the
/// lab's runs.
pub fn claim(settings: &PodSettings, lab: &str) -> Result<PersistentVolumeClaim, BackendError> {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": { "requests": { "storage": settings.workspace_bytes.max(1 << 30).to_string() } },
    });
    if let Some(class) = &settings.storage_class {
        spec["storageClassName"] = json!(class);
    }
    typed(
        "workspace claim",
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": { "name": workspace_claim(lab), "labels": labels(settings, lab) },
            "spec": spec,
        }),
    )
}

/// Only the node's own pods may reach the lab, on its server's port; the lab reaches nothing
/// (as a lab on a node's machine has no network).
pub fn policy(settings: &PodSettings, lab: &str) -> Result<NetworkPolicy, BackendError> {
    typed(
        "NetworkPolicy",
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": { "name": name(lab), "labels": labels(settings, lab) },
            "spec": {
                "podSelector": { "matchLabels": { NODE_LABEL: settings.node, LAB_LABEL: lab } },
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{
                    "from": [{ "podSelector": { "matchLabels": settings.node_labels } }],
                    "ports": [{ "protocol": "TCP", "port": POD_PORT }],
                }],
                "egress": [],
            },
        }),
    )
}
