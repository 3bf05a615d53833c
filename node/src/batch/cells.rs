//! A notebook run whole in one kernel: its code cells in order, with the parameters injected as
//! papermill injects them, stopping at the first cell that raises. The same loop makes a job's
//! run in a lab here and inside a batch job of the centre's cluster, so their records agree.

use std::time::Duration;

use orrery_protocol::job::{JobCell, MAX_JOB_OUTPUT_BYTES, parameters_cell};
use orrery_protocol::run::{MAX_ERROR_BYTES, RunStatus};
use tracing::warn;

use crate::labs::kernel::{Ended, Kernel};

/// The id of the cell the parameters are injected in.
pub const INJECTED: &str = "injected-parameters";

/// How a run ended, as its record says it.
pub fn status_of(ended: &Ended) -> RunStatus {
    match ended {
        Ended::Ok => RunStatus::Ok,
        Ended::Error { ename, evalue } => RunStatus::Error(
            format!("{ename}: {evalue}")
                .chars()
                .take(MAX_ERROR_BYTES / 4)
                .collect(),
        ),
        Ended::Aborted => RunStatus::Error("the kernel did not run the cell".into()),
    }
}

/// The cells a run executes, as (id, source): the notebook's code cells (each with whether it
/// is tagged `parameters`), with the parameters injected after the tagged one (first if none
/// is), as papermill does.
pub fn with_parameters(
    cells: Vec<(String, String, bool)>,
    parameters: &[(String, String)],
) -> Vec<(String, String)> {
    let at = cells.iter().position(|c| c.2).map_or(0, |i| i + 1);
    let mut out: Vec<(String, String)> = cells.into_iter().map(|(id, s, _)| (id, s)).collect();
    if !parameters.is_empty() {
        out.insert(at, (INJECTED.to_owned(), parameters_cell(parameters)));
    }
    out
}

/// Runs `cells` in order in `kernel`, each for at most `deadline`; after the first that does
/// not end well the rest are kept as not run. Every cell's outputs are kept up to
/// [`MAX_JOB_OUTPUT_BYTES`] in all (a cell past it keeps a note saying so). `ran` sees the
/// cells so far after each one that ran. Returns the cells and how the run ended.
pub async fn run_cells(
    kernel: &Kernel,
    cells: Vec<(String, String)>,
    deadline: Duration,
    ran: &mut (dyn FnMut(&[JobCell], &RunStatus) + Send),
) -> (Vec<JobCell>, RunStatus) {
    let mut status = RunStatus::Ok;
    let mut out = Vec::with_capacity(cells.len());
    let mut kept = 0usize;
    for (cell, source) in cells {
        let source_blake3 = *blake3::hash(source.as_bytes()).as_bytes();
        if status != RunStatus::Ok {
            out.push(JobCell {
                cell,
                source_blake3,
                execution_count: None,
                outputs: Vec::new(),
                status: None,
            });
            continue;
        }
        let (outputs, count, cell_status) =
            match kernel.execute(&source, deadline, &mut |_| {}).await {
                Ok(e) => {
                    let s = status_of(&e.ended);
                    (e.outputs, e.execution_count, s)
                }
                Err(e) => (Vec::new(), None, RunStatus::Error(e.to_string())),
            };
        if cell_status != RunStatus::Ok {
            status = cell_status.clone();
        }
        let mut outputs: Vec<String> = outputs.iter().map(ToString::to_string).collect();
        let bytes: usize = outputs.iter().map(String::len).sum();
        if kept + bytes > MAX_JOB_OUTPUT_BYTES {
            warn!(
                cell,
                bytes, "a job's outputs passed what its record keeps; this cell's were left out"
            );
            let note = serde_json::json!({
                "output_type": "stream",
                "name": "stderr",
                "text": format!(
                    "{bytes} bytes of outputs were not kept: a run's record keeps at most {} MiB\n",
                    MAX_JOB_OUTPUT_BYTES >> 20
                ),
            });
            outputs = vec![note.to_string()];
        }
        kept += outputs.iter().map(String::len).sum::<usize>();
        out.push(JobCell {
            cell,
            source_blake3,
            execution_count: count,
            outputs,
            status: Some(cell_status),
        });
        ran(&out, &status);
    }
    (out, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_go_after_the_tagged_cell_or_first() {
        let cells = || {
            vec![
                ("a".to_owned(), "import x".to_owned(), false),
                ("p".to_owned(), "n = 1".to_owned(), true),
                ("b".to_owned(), "print(n)".to_owned(), false),
            ]
        };
        let params = [("n".to_owned(), "2".to_owned())];
        let ids: Vec<String> = with_parameters(cells(), &params)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(ids, ["a", "p", INJECTED, "b"]);
        let untagged: Vec<_> = cells().into_iter().map(|(i, s, _)| (i, s, false)).collect();
        let ids: Vec<String> = with_parameters(untagged, &params)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(ids, [INJECTED, "a", "p", "b"]);
        assert_eq!(with_parameters(cells(), &[]).len(), 3);
    }
}
