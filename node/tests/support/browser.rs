//! What the browser scripts report, judged the same way by every browser test.

use serde_json::Value;

/// The serious or critical accessibility violations among axe's `violations`.
#[allow(dead_code)]
pub(crate) fn serious(violations: &Value) -> Vec<&Value> {
    violations
        .as_array()
        .expect("axe's violations")
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect()
}
