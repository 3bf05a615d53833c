//! Writing one benchmark's section of the workspace's `BENCHMARKS.md` (shared by every
//! benchmark, included by path).

use std::path::Path;

const HEADER: &str = "# Benchmarks\n\nMeasured on a 2-core machine (the project's development and \
                      CI machine kind); compare ratios against baselines measured in the same run, \
                      not absolute times across runs.\n";

/// Replaces the section headed `heading` of `BENCHMARKS.md` at the root of the workspace that
/// holds the crate at `manifest_dir` with `body`, or appends it, creating the file if needed.
/// A failure is reported on stderr: the figures were printed already.
pub(crate) fn write_section(manifest_dir: &str, heading: &str, body: &str) {
    let root = Path::new(manifest_dir);
    let path = root.parent().unwrap_or(root).join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| HEADER.to_string());
    let section = format!("{heading}\n\n{}\n", body.trim_end());
    let new = match text.find(heading) {
        Some(start) => {
            let after = start + heading.len();
            let end = text[after..]
                .find("\n## ")
                .map_or(text.len(), |i| after + i + 1);
            let rest = &text[end..];
            let sep = if rest.is_empty() { "" } else { "\n" };
            format!("{}{section}{sep}{rest}", &text[..start])
        }
        None => format!("{}\n\n{section}", text.trim_end()),
    };
    match std::fs::write(&path, new) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
