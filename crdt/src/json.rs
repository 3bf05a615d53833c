//! JSON nested deeper than `serde_json`'s default limit of 128 levels, up to [`MAX_JSON_DEPTH`].
//!
//! Notebook metadata and outputs are free-form JSON, and valid notebooks nest deeper than 128
//! levels (widget states, plot specifications). The depth is counted first by a scan that
//! recurses nowhere, so a hostile file cannot exhaust the stack; only then is the text parsed
//! with `serde_json`'s recursion limit lifted. [`MAX_JSON_DEPTH`] levels parse, drop and
//! serialise within a 2 MiB thread stack.

use serde::Deserialize;
use serde_json::Value;

/// Deepest nesting of arrays and objects accepted in a notebook, its metadata and its outputs.
pub const MAX_JSON_DEPTH: usize = 1024;

/// Why JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeepJsonError {
    /// It nests deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
    /// It is not JSON: where (line, column) the parser stopped.
    Invalid { line: usize, column: usize },
}

/// The deepest nesting of `[` and `{` in `bytes`, outside strings; `None` once past `limit`.
fn depth_within(bytes: &[u8], limit: usize) -> Option<usize> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return None;
                }
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some(deepest)
}

/// Parses JSON text nested at most [`MAX_JSON_DEPTH`] deep.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, DeepJsonError> {
    if depth_within(bytes, MAX_JSON_DEPTH).is_none() {
        return Err(DeepJsonError::TooDeep);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = Value::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    value.map_err(|e| DeepJsonError::Invalid {
        line: e.line(),
        column: e.column(),
    })
}

/// [`parse`] of text that is expected to be JSON, `None` if it is not.
pub(crate) fn parse_str(text: &str) -> Option<Value> {
    parse(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn deep_but_bounded_json_parses() {
        assert!(
            serde_json::from_str::<Value>(&nested(200)).is_err(),
            "the default limit"
        );
        let v = parse(nested(MAX_JSON_DEPTH).as_bytes()).expect("parses");
        assert_eq!(
            serde_json::to_string(&v).expect("writes"),
            nested(MAX_JSON_DEPTH)
        );
        assert_eq!(
            parse(nested(MAX_JSON_DEPTH + 1).as_bytes()),
            Err(DeepJsonError::TooDeep)
        );
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let text = format!(r#"{{"a": "{}\"[", "b": [1]}}"#, "[".repeat(5000));
        assert!(parse(text.as_bytes()).is_ok());
        assert!(matches!(
            parse(b"[1, 2"),
            Err(DeepJsonError::Invalid { .. })
        ));
        assert!(matches!(
            parse(b"[1] x"),
            Err(DeepJsonError::Invalid { .. })
        ));
    }
}
