//! Tables, times and citation files for the command line.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

/// A table with a header row.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    for row in rows {
        t.add_row(row);
    }
    t.to_string()
}

/// Seconds since the epoch as an RFC 3339 UTC time.
pub(crate) fn time(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One line per replication problem: "not replicated to Heidelberg (1e5c…) since …: reason",
/// naming the project too when `with_project`.
pub(crate) fn replication_problems(
    store: &crate::store::Store,
    problems: &[crate::store::ReplicationProblem],
    with_project: bool,
) -> Result<Vec<String>, crate::store::StoreError> {
    let adverts = store.adverts()?;
    let projects = store.projects()?;
    Ok(problems
        .iter()
        .map(|r| {
            let peer = adverts.iter().find(|a| a.node == r.peer).map_or_else(
                || r.peer.short(),
                |a| format!("{} ({})", a.name, r.peer.short()),
            );
            let what = match r.direction {
                crate::store::Direction::To => format!("not replicated to {peer}"),
                crate::store::Direction::From => format!("refused from {peer}"),
            };
            let project = if with_project {
                let title = projects
                    .iter()
                    .find(|p| p.id == r.project)
                    .map_or_else(|| r.project.short(), |p| p.title.clone());
                format!("{title:?}: ")
            } else {
                String::new()
            };
            format!("{project}{what} since {}: {}", time(r.since), r.reason)
        })
        .collect())
}
