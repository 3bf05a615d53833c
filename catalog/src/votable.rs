//! The XML documents a TAP service returns: VOTable 1.4 results and errors (DALI), the VOSI
//! availability, capabilities and tables documents, and UWS 1.1 job documents.
//!
//! Every document is UTF-8 and well-formed whatever text it carries: `& < > " '` are escaped,
//! and characters XML 1.0 forbids (most control characters, U+FFFE, U+FFFF) are replaced by
//! U+FFFD. Nothing here does I/O; each function returns the whole document.

use std::fmt::Write as _;

use crate::Value;
use crate::obscore::{Column, Datatype};
use crate::table::{self, Table};

/// The media type of a VOTable document.
pub const VOTABLE_MEDIA_TYPE: &str = "application/x-votable+xml";
/// The media type of the VOSI and UWS documents.
pub const XML_MEDIA_TYPE: &str = "text/xml";

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const VOTABLE_OPEN: &str = "<VOTABLE version=\"1.4\" \
     xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\" \
     xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
     xsi:schemaLocation=\"http://www.ivoa.net/xml/VOTable/v1.3 \
     http://www.ivoa.net/xml/VOTable/votable-1.4.xsd\">\n";
const XSI: &str = "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";
const VS: &str = "xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\"";
/// The namespaces of a UWS element that stands alone (a job's `parameters` or `results`).
const UWS_NAMESPACES: &str = "xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
     xmlns:xlink=\"http://www.w3.org/1999/xlink\"";
const UWS_OPEN: &str = "xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
     xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
     xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" version=\"1.1\"";

/// A query's result table as a VOTable: one `FIELD` per column, named by its output name, and
/// one `TR` per row. A column is declared with its own datatype, except that a `char` column
/// (ASCII in VOTable 1.4) becomes `unicodeChar` when some of its values in `rows` are not
/// ASCII (`obs_title`, free text, is `unicodeChar` always). A cell of the wrong type for its column, `NaN`, an infinity and NULL are
/// empty cells; a row shorter than `columns` is padded with empty cells and a longer one is cut.
/// `overflow` (more rows matched than were returned) adds the DALI `OVERFLOW` status after the
/// table.
pub fn results(columns: &[(&str, &Column)], rows: &[Vec<Value>], overflow: bool) -> String {
    let mut out = String::with_capacity(1024 + rows.len() * columns.len() * 16);
    out.push_str(XML_DECLARATION);
    out.push_str(VOTABLE_OPEN);
    out.push_str("<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"OK\"/>\n");
    out.push_str("<TABLE>\n");
    for (i, (name, column)) in columns.iter().enumerate() {
        let unicode = column.datatype == Datatype::Char
            && rows
                .iter()
                .any(|row| matches!(row.get(i), Some(Value::Text(s)) if !s.is_ascii()));
        field(&mut out, name, column, unicode);
    }
    out.push_str("<DATA><TABLEDATA>\n");
    for row in rows {
        out.push_str("<TR>");
        for (i, (_, column)) in columns.iter().enumerate() {
            match row.get(i).and_then(|v| cell(column.datatype, v)) {
                Some(text) => {
                    out.push_str("<TD>");
                    escape_into(&mut out, &text, false);
                    out.push_str("</TD>");
                }
                None => out.push_str("<TD/>"),
            }
        }
        out.push_str("</TR>\n");
    }
    out.push_str("</TABLEDATA></DATA>\n</TABLE>\n");
    if overflow {
        out.push_str("<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>\n");
    }
    out.push_str("</RESOURCE>\n</VOTABLE>\n");
    out
}

/// A DALI error document: a VOTable whose results resource holds only
/// `<INFO name="QUERY_STATUS" value="ERROR">message</INFO>`.
pub fn error(message: &str) -> String {
    let mut out = String::new();
    out.push_str(XML_DECLARATION);
    out.push_str(VOTABLE_OPEN);
    out.push_str("<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"ERROR\">");
    escape_into(&mut out, message, false);
    out.push_str("</INFO>\n</RESOURCE>\n</VOTABLE>\n");
    out
}

/// The VOSI availability document. An empty `note` is left out.
pub fn availability(available: bool, note: &str) -> String {
    let mut out = String::from(XML_DECLARATION);
    out.push_str(
        "<vosi:availability xmlns:vosi=\"http://www.ivoa.net/xml/VOSIAvailability/v1.0\">\n",
    );
    push(
        &mut out,
        format_args!("  <vosi:available>{available}</vosi:available>\n"),
    );
    if !note.is_empty() {
        out.push_str("  <vosi:note>");
        escape_into(&mut out, note, false);
        out.push_str("</vosi:note>\n");
    }
    out.push_str("</vosi:availability>\n");
    out
}

/// The VOSI capabilities document for a TAP service at `base_url` (its trailing `/` ignored):
/// TAP 1.1 (`tr:TableAccess`) answering ADQL 2.1 (offering `ILIKE`) with `CONTAINS`, `POINT` and `CIRCLE`, serving
/// ObsCore 1.1, writing TABLEDATA VOTables and taking no uploads; and the VOSI availability,
/// capabilities and tables endpoints below the base.
/// `default_maxrec` and `hard_maxrec` are the rows a query returns without and at most with
/// `MAXREC`.
pub fn capabilities(base_url: &str, default_maxrec: u64, hard_maxrec: u64) -> String {
    let base = base_url.trim_end_matches('/');
    let mut out = String::from(XML_DECLARATION);
    push(
        &mut out,
        format_args!(
            "<vosi:capabilities xmlns:vosi=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0\" \
             {XSI} {VS} xmlns:tr=\"http://www.ivoa.net/xml/TAPRegExt/v1.0\">\n"
        ),
    );
    out.push_str(
        "  <capability standardID=\"ivo://ivoa.net/std/TAP\" xsi:type=\"tr:TableAccess\">\n",
    );
    out.push_str("    <interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"1.1\">\n");
    out.push_str("      <accessURL use=\"base\">");
    escape_into(&mut out, base, false);
    out.push_str("</accessURL>\n    </interface>\n");
    out.push_str(
        "    <dataModel ivo-id=\"ivo://ivoa.net/std/ObsCore#core-1.1\">ObsCore-1.1</dataModel>\n",
    );
    out.push_str(CAPABILITY_LANGUAGE);
    push(
        &mut out,
        format_args!(
            "    <outputLimit>\n      <default unit=\"row\">{default_maxrec}</default>\n      \
             <hard unit=\"row\">{hard_maxrec}</hard>\n    </outputLimit>\n  </capability>\n"
        ),
    );
    for (standard, path) in [
        ("availability", "availability"),
        ("capabilities", "capabilities"),
        ("tables", "tables"),
    ] {
        push(
            &mut out,
            format_args!(
                "  <capability standardID=\"ivo://ivoa.net/std/VOSI#{standard}\">\n    \
                 <interface xsi:type=\"vs:ParamHTTP\">\n      <accessURL use=\"full\">"
            ),
        );
        escape_into(&mut out, base, false);
        push(
            &mut out,
            format_args!("/{path}</accessURL>\n    </interface>\n  </capability>\n"),
        );
    }
    out.push_str("</vosi:capabilities>\n");
    out
}

/// The TAP capability after its data model: the language, the output format, and the close.
const CAPABILITY_LANGUAGE: &str = "    <language>
      <name>ADQL</name>
      <version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.1\">2.1</version>
      <description>A subset of ADQL 2.1 against ivoa.obscore: SELECT [TOP n] columns or *, \
WHERE with comparisons, LIKE, ILIKE, BETWEEN, IN, IS NULL, AND, OR, NOT and \
CONTAINS(POINT, CIRCLE), and ORDER BY.</description>
      <languageFeatures type=\"ivo://ivoa.net/std/TAPRegExt#features-adqlgeo\">
        <feature><form>CONTAINS</form></feature>
        <feature><form>POINT</form></feature>
        <feature><form>CIRCLE</form></feature>
      </languageFeatures>
      <languageFeatures type=\"ivo://ivoa.net/std/TAPRegExt#features-adql-string\">
        <feature><form>ILIKE</form></feature>
      </languageFeatures>
    </language>
    <outputFormat ivo-id=\"ivo://ivoa.net/std/TAPRegExt#output-votable-td\">
      <mime>application/x-votable+xml</mime>
      <alias>votable</alias>
    </outputFormat>

";

/// The VOSI tables document: every schema and table of [`table::TABLES`] (`ivoa.obscore` and
/// the `TAP_SCHEMA` tables) with every column's name, description, unit, UCD, utype, VOTable
/// type and `indexed`/`principal` flags, as `TAP_SCHEMA` lists them.
pub fn tables() -> String {
    let mut out = String::from(XML_DECLARATION);
    push(
        &mut out,
        format_args!(
            "<vosi:tableset xmlns:vosi=\"http://www.ivoa.net/xml/VOSITables/v1.0\" {XSI} {VS}>\n"
        ),
    );
    for schema in table::SCHEMAS {
        out.push_str("  <schema>\n");
        element(&mut out, 4, "name", schema.name);
        element(&mut out, 4, "description", schema.description);
        for t in table::TABLES.iter().filter(|t| t.schema == schema.name) {
            vosi_table(&mut out, t);
        }
        out.push_str("  </schema>\n");
    }
    out.push_str("</vosi:tableset>\n");
    out
}

fn vosi_table(out: &mut String, t: &Table) {
    push(
        out,
        format_args!("    <table type=\"{}\">\n", t.kind.as_str()),
    );
    element(out, 6, "name", &t.qualified());
    if !t.description.is_empty() {
        element(out, 6, "description", t.description);
    }
    if let Some(utype) = t.utype {
        element(out, 6, "utype", utype);
    }
    for column in t.columns {
        table_column(out, column);
    }
    for key in t.foreign_keys {
        out.push_str("      <foreignKey>\n");
        element(out, 8, "targetTable", key.target);
        for (from, to) in key.columns {
            out.push_str("        <fkColumn>\n");
            element(out, 10, "fromColumn", from);
            element(out, 10, "targetColumn", to);
            out.push_str("        </fkColumn>\n");
        }
        out.push_str("      </foreignKey>\n");
    }
    out.push_str("    </table>\n");
}

fn table_column(out: &mut String, column: &Column) {
    out.push_str("      <column>\n");
    element(out, 8, "name", &column.published_name());
    element(out, 8, "description", column.description);
    if let Some(unit) = column.unit {
        element(out, 8, "unit", unit);
    }
    if let Some(ucd) = column.ucd {
        element(out, 8, "ucd", ucd);
    }
    if let Some(utype) = column.utype {
        element(out, 8, "utype", utype);
    }
    let arraysize = match column.datatype.arraysize() {
        Some(_) => " arraysize=\"*\"",
        None => "",
    };
    push(
        out,
        format_args!(
            "        <dataType xsi:type=\"vs:VOTableType\"{arraysize}>{}</dataType>\n",
            column.datatype.votable()
        ),
    );
    if column.indexed {
        out.push_str("        <flag>indexed</flag>\n");
    }
    if column.principal {
        out.push_str("        <flag>principal</flag>\n");
    }
    out.push_str("      </column>\n");
}

/// A UWS job's execution phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Created, not yet run.
    Pending,
    /// Waiting for its turn.
    Queued,
    /// Running.
    Executing,
    /// Finished; its result can be fetched.
    Completed,
    /// Failed; its error summary says why.
    Error,
    /// Stopped before it finished.
    Aborted,
}

impl Phase {
    /// The phase's name in UWS documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "PENDING",
            Phase::Queued => "QUEUED",
            Phase::Executing => "EXECUTING",
            Phase::Completed => "COMPLETED",
            Phase::Error => "ERROR",
            Phase::Aborted => "ABORTED",
        }
    }

    /// Whether the job will not change phase again.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Completed | Phase::Error | Phase::Aborted)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a UWS job document says about one asynchronous TAP query. Times are ISO 8601 strings
/// supplied by the caller (UTC, e.g. `2024-05-01T12:00:00.000Z`).
#[derive(Debug, Clone, PartialEq)]
pub struct UwsJob {
    /// The job's identifier.
    pub job_id: String,
    /// The URL of the job itself; its result is at `{job_url}/results/result`.
    pub job_url: String,
    /// The client's `RUNID`, if given.
    pub run_id: Option<String>,
    /// Its owner, if known.
    pub owner_id: Option<String>,
    /// Its phase.
    pub phase: Phase,
    /// When it was created.
    pub creation_time: String,
    /// When it started running, if it has.
    pub start_time: Option<String>,
    /// When it finished, if it has.
    pub end_time: Option<String>,
    /// Longest run allowed, in seconds (0: unlimited).
    pub execution_duration: u64,
    /// When the service will delete it, if planned.
    pub destruction: Option<String>,
    /// The `QUERY` parameter.
    pub query: String,
    /// The `LANG` parameter.
    pub lang: String,
    /// The `MAXREC` parameter, if given.
    pub maxrec: Option<u64>,
    /// Why it failed (shown when the phase is [`Phase::Error`]).
    pub error_summary: Option<String>,
}

/// The UWS 1.1 job document. The result is listed only when the job is completed and the error
/// summary only when it failed; unknown times are `xsi:nil`.
pub fn uws_job(job: &UwsJob) -> String {
    let mut out = String::from(XML_DECLARATION);
    push(&mut out, format_args!("<uws:job {UWS_OPEN}>\n"));
    element(&mut out, 2, "uws:jobId", &job.job_id);
    if let Some(run_id) = &job.run_id {
        element(&mut out, 2, "uws:runId", run_id);
    }
    nillable(&mut out, "uws:ownerId", job.owner_id.as_deref());
    element(&mut out, 2, "uws:phase", job.phase.as_str());
    element(&mut out, 2, "uws:creationTime", &job.creation_time);
    nillable(&mut out, "uws:startTime", job.start_time.as_deref());
    nillable(&mut out, "uws:endTime", job.end_time.as_deref());
    // UWS declares the duration an xs:int.
    let duration = job.execution_duration.min(i32::MAX as u64);
    push(
        &mut out,
        format_args!("  <uws:executionDuration>{duration}</uws:executionDuration>\n"),
    );
    nillable(&mut out, "uws:destruction", job.destruction.as_deref());
    push_parameters(&mut out, job, "");
    push_results(&mut out, job, "");
    if job.phase == Phase::Error {
        let message = job.error_summary.as_deref().unwrap_or("the query failed");
        out.push_str("  <uws:errorSummary type=\"fatal\" hasDetail=\"false\">\n");
        element(&mut out, 4, "uws:message", message);
        out.push_str("  </uws:errorSummary>\n");
    }
    out.push_str("</uws:job>\n");
    out
}

/// A job's `parameters` element, alone (the UWS `{job}/parameters` resource).
pub fn uws_parameters(job: &UwsJob) -> String {
    let mut out = String::from(XML_DECLARATION);
    push_parameters(&mut out, job, UWS_NAMESPACES);
    out
}

/// A job's `results` element, alone (the UWS `{job}/results` resource).
pub fn uws_results(job: &UwsJob) -> String {
    let mut out = String::from(XML_DECLARATION);
    push_results(&mut out, job, UWS_NAMESPACES);
    out
}

/// The `parameters` element; `namespaces` is empty inside a job document,
/// [`UWS_NAMESPACES`] when the element stands alone.
fn push_parameters(out: &mut String, job: &UwsJob, namespaces: &str) {
    let space = if namespaces.is_empty() { "" } else { " " };
    push(out, format_args!("  <uws:parameters{space}{namespaces}>\n"));
    parameter(out, "query", &job.query);
    parameter(out, "lang", &job.lang);
    if let Some(maxrec) = job.maxrec {
        parameter(out, "maxrec", &maxrec.to_string());
    }
    out.push_str("  </uws:parameters>\n");
}

/// The `results` element, listing the result once the job is completed; `namespaces` as for
/// [`push_parameters`].
fn push_results(out: &mut String, job: &UwsJob, namespaces: &str) {
    let space = if namespaces.is_empty() { "" } else { " " };
    if job.phase == Phase::Completed {
        push(
            out,
            format_args!(
                "  <uws:results{space}{namespaces}>\n    <uws:result id=\"result\" xlink:type=\"simple\" xlink:href=\""
            ),
        );
        escape_into(out, job.job_url.trim_end_matches('/'), true);
        push(
            out,
            format_args!(
                "/results/result\" mime-type=\"{VOTABLE_MEDIA_TYPE}\"/>\n  </uws:results>\n"
            ),
        );
    } else {
        push(out, format_args!("  <uws:results{space}{namespaces}/>\n"));
    }
}

/// The UWS 1.1 job list: one `jobref` with its phase per (job id, phase).
pub fn uws_jobs(list: &[(String, Phase)]) -> String {
    let mut out = String::from(XML_DECLARATION);
    push(&mut out, format_args!("<uws:jobs {UWS_OPEN}>\n"));
    for (id, phase) in list {
        out.push_str("  <uws:jobref id=\"");
        escape_into(&mut out, id, true);
        push(
            &mut out,
            format_args!("\">\n    <uws:phase>{phase}</uws:phase>\n  </uws:jobref>\n"),
        );
    }
    out.push_str("</uws:jobs>\n");
    out
}

// ---------------------------------------------------------------------------------------------

/// One `FIELD`, with the column's description; `unicode` declares text as `unicodeChar`.
fn field(out: &mut String, name: &str, column: &Column, unicode: bool) {
    let name = if name.is_empty() { column.name } else { name };
    out.push_str("<FIELD name=\"");
    escape_into(out, name, true);
    let datatype = if unicode {
        "unicodeChar"
    } else {
        column.datatype.votable()
    };
    push(out, format_args!("\" datatype=\"{datatype}\""));
    if let Some(arraysize) = column.datatype.arraysize() {
        push(out, format_args!(" arraysize=\"{arraysize}\""));
    }
    if let Some(unit) = column.unit {
        attribute(out, "unit", unit);
    }
    if let Some(ucd) = column.ucd {
        attribute(out, "ucd", ucd);
    }
    if let Some(utype) = column.utype {
        attribute(out, "utype", utype);
    }
    out.push_str(">\n<DESCRIPTION>");
    escape_into(out, column.description, false);
    out.push_str("</DESCRIPTION>\n</FIELD>\n");
}

/// A cell's text for a column of `datatype`, or `None` for an empty cell.
fn cell(datatype: Datatype, value: &Value) -> Option<String> {
    match datatype {
        Datatype::Char | Datatype::UnicodeChar => match value {
            Value::Null => None,
            Value::Int(i) => Some(i.to_string()),
            Value::Double(v) => double(*v),
            Value::Text(s) => Some(s.clone()),
        },
        Datatype::Int => integer(value)
            .filter(|i| i32::try_from(*i).is_ok())
            .map(|i| i.to_string()),
        Datatype::Long => integer(value).map(|i| i.to_string()),
        Datatype::Double => match value {
            Value::Int(i) => Some(i.to_string()),
            Value::Double(v) => double(*v),
            Value::Text(s) => s.trim().parse().ok().and_then(double),
            Value::Null => None,
        },
    }
}

/// The value as an integer, if it is one exactly.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        // The range check keeps the cast exact (2^63 itself is out).
        Value::Double(v) if v.fract() == 0.0 && (-9.2e18..9.2e18).contains(v) => Some(*v as i64),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A finite double written so that it reads back to the same value; `None` for NaN and the
/// infinities.
fn double(v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    // Both forms are the shortest that round-trip; the exponent keeps huge and tiny values short.
    if v == 0.0 || (1e-5..1e16).contains(&v.abs()) {
        Some(format!("{v}"))
    } else {
        Some(format!("{v:e}"))
    }
}

fn push(out: &mut String, args: std::fmt::Arguments<'_>) {
    // Writing into a String cannot fail.
    let _ = out.write_fmt(args);
}

fn attribute(out: &mut String, name: &str, value: &str) {
    push(out, format_args!(" {name}=\""));
    escape_into(out, value, true);
    out.push('"');
}

/// `<name>text</name>` on its own line, indented.
fn element(out: &mut String, indent: usize, name: &str, text: &str) {
    push(out, format_args!("{:indent$}<{name}>", ""));
    escape_into(out, text, false);
    push(out, format_args!("</{name}>\n"));
}

/// A nillable UWS element: its text, or `xsi:nil` when unknown.
fn nillable(out: &mut String, name: &str, text: Option<&str>) {
    match text {
        Some(text) => element(out, 2, name, text),
        None => push(out, format_args!("  <{name} xsi:nil=\"true\"/>\n")),
    }
}

fn parameter(out: &mut String, id: &str, value: &str) {
    push(out, format_args!("    <uws:parameter id=\"{id}\">"));
    escape_into(out, value, false);
    out.push_str("</uws:parameter>\n");
}

/// Appends `text` escaped for XML content or (with `attribute`) a double-quoted attribute.
/// Characters XML 1.0 forbids become U+FFFD; a carriage return (and in attributes, a tab or a
/// newline) becomes a character reference so that parsers keep it.
fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\t' | '\n' => out.push(c),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

/// Whether XML 1.0 allows `c` in a document (tab, newline and carriage return aside).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOSTILE: &str =
        "</TD><script>alert(\"x\" & 'y')</script>\u{0}\u{1}\u{b}\u{1f}\u{fffe}\u{ffff}\r\n\tend";

    /// A small well-formedness check: one root, balanced tags, quoted attributes, known entities
    /// only, and no character XML 1.0 forbids.
    fn well_formed(doc: &str) -> Result<(), String> {
        let body = doc
            .strip_prefix(XML_DECLARATION)
            .ok_or("no XML declaration")?;
        let mut stack: Vec<&str> = Vec::new();
        let mut roots = 0;
        let mut rest = body;
        while let Some(lt) = rest.find('<') {
            let (text, tail) = rest.split_at(lt);
            check_text(text)?;
            if stack.is_empty() && !text.trim().is_empty() {
                return Err(format!("text outside the root: {text:?}"));
            }
            let gt = tail.find('>').ok_or("a tag is not closed")?;
            let tag = &tail[1..gt];
            rest = &tail[gt + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => continue,
                    open => return Err(format!("</{name}> closes {open:?}")),
                }
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
            let (name, mut attributes) = tag.split_at(name_end);
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":_-".contains(c))
            {
                return Err(format!("bad tag name {name:?}"));
            }
            loop {
                attributes = attributes.trim_start();
                if attributes.is_empty() {
                    break;
                }
                let eq = attributes
                    .find("=\"")
                    .ok_or(format!("bad attribute in <{name}>"))?;
                let value_len = attributes[eq + 2..].find('"').ok_or("unclosed attribute")?;
                let value = &attributes[eq + 2..eq + 2 + value_len];
                check_text(value)?;
                if value.contains(['\n', '\t']) {
                    return Err(format!("raw whitespace in an attribute: {value:?}"));
                }
                attributes = &attributes[eq + 3 + value_len..];
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name);
            }
        }
        check_text(rest)?;
        match (stack.is_empty(), roots, rest.trim().is_empty()) {
            (true, 1, true) => Ok(()),
            _ => Err(format!("unbalanced: open {stack:?}, {roots} roots")),
        }
    }

    fn check_text(text: &str) -> Result<(), String> {
        if let Some(c) = text
            .chars()
            .find(|c| !(is_xml_char(*c) || matches!(c, '\t' | '\n')))
        {
            return Err(format!("forbidden character {c:?}"));
        }
        let mut parts = text.split('&');
        parts.next();
        for part in parts {
            let entity = part.split(';').next().unwrap_or_default();
            let known = ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                || (entity.len() > 1
                    && entity.starts_with('#')
                    && entity[1..].bytes().all(|b| b.is_ascii_digit()));
            if !known || !part.contains(';') {
                return Err(format!("bad entity in {text:?}"));
            }
        }
        if text.contains("]]>") {
            return Err("]]> in text".into());
        }
        Ok(())
    }

    fn col(name: &str) -> &'static Column {
        crate::obscore::column(name).expect("an obscore column")
    }

    #[test]
    fn the_checker_catches_broken_documents() {
        let ok = format!("{XML_DECLARATION}<a x=\"1\"><b/>t &amp; u</a>\n");
        assert_eq!(well_formed(&ok), Ok(()));
        for bad in [
            "<a><b></a></b>",
            "<a>&nbsp;</a>",
            "<a>\u{1}</a>",
            "<a/><b/>",
            "<a x=1/>",
            "<a>",
        ] {
            assert!(
                well_formed(&format!("{XML_DECLARATION}{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn results_are_a_votable_with_typed_fields_and_rows() {
        let columns = [
            ("obs_id", col("obs_id")),
            ("ra", col("s_ra")),
            ("calib_level", col("calib_level")),
            ("access_estsize", col("access_estsize")),
        ];
        let rows = vec![
            vec![
                Value::Text("a1".into()),
                Value::Double(83.6),
                Value::Int(2),
                Value::Int(1 << 40),
            ],
            vec![
                Value::Null,
                Value::Double(f64::NAN),
                Value::Null,
                Value::Null,
            ],
        ];
        let doc = results(&columns, &rows, false);
        assert_eq!(well_formed(&doc), Ok(()), "{doc}");
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\""));
        assert!(doc.contains("<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"OK\"/>\n<TABLE>\n<FIELD name=\"obs_id\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.id\" utype=\"obscore:DataID.observationID\">"));
        assert!(
            doc.contains("<FIELD name=\"ra\" datatype=\"double\" unit=\"deg\" ucd=\"pos.eq.ra\"")
        );
        assert!(doc.contains("<FIELD name=\"calib_level\" datatype=\"int\" ucd="));
        assert!(doc.contains("<FIELD name=\"access_estsize\" datatype=\"long\" unit=\"kbyte\""));
        assert!(doc.contains("<TR><TD>a1</TD><TD>83.6</TD><TD>2</TD><TD>1099511627776</TD></TR>\n<TR><TD/><TD/><TD/><TD/></TR>\n"));
        assert!(!doc.contains("OVERFLOW"));
    }

    #[test]
    fn overflow_is_reported_after_the_table() {
        let doc = results(&[("s_ra", col("s_ra"))], &[vec![Value::Double(1.0)]], true);
        assert_eq!(well_formed(&doc), Ok(()));
        assert!(doc.ends_with("</TABLE>\n<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>\n</RESOURCE>\n</VOTABLE>\n"), "{doc}");
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let columns = [(HOSTILE, col("obs_id"))];
        let doc = results(&columns, &[vec![Value::Text(HOSTILE.into())]], false);
        assert_eq!(well_formed(&doc), Ok(()), "{doc}");
        assert!(!doc.contains("<script>") && !doc.contains("</TD><script>"));
        assert!(doc.contains("<TD>&lt;/TD&gt;&lt;script&gt;alert(&quot;x&quot; &amp; &apos;y&apos;)&lt;/script&gt;\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}&#13;\n\tend</TD>"), "{doc}");
        assert!(doc.contains("<FIELD name=\"&lt;/TD&gt;"));
        assert!(
            doc.contains("datatype=\"unicodeChar\" arraysize=\"*\""),
            "{doc}"
        );
        assert!(doc.contains("&#13;&#10;&#9;end\" datatype"));
        for doc in [
            error(HOSTILE),
            availability(false, HOSTILE),
            capabilities(HOSTILE, 10, 20),
            uws_jobs(&[(HOSTILE.to_owned(), Phase::Queued)]),
        ] {
            assert_eq!(well_formed(&doc), Ok(()), "{doc}");
            assert!(!doc.contains("<script>"));
        }
    }

    #[test]
    fn cells_follow_their_column_type() {
        assert_eq!(cell(Datatype::Int, &Value::Int(1 << 40)), None);
        assert_eq!(cell(Datatype::Int, &Value::Double(3.0)), Some("3".into()));
        assert_eq!(cell(Datatype::Long, &Value::Double(3.5)), None);
        assert_eq!(
            cell(Datatype::Long, &Value::Text(" 42 ".into())),
            Some("42".into())
        );
        assert_eq!(cell(Datatype::Long, &Value::Double(1e300)), None);
        assert_eq!(cell(Datatype::Double, &Value::Int(7)), Some("7".into()));
        assert_eq!(cell(Datatype::Double, &Value::Double(f64::INFINITY)), None);
        assert_eq!(
            cell(Datatype::Double, &Value::Double(1e300)),
            Some("1e300".into())
        );
        assert_eq!(
            cell(Datatype::Double, &Value::Double(-2.5e-7)),
            Some("-2.5e-7".into())
        );
        assert_eq!(cell(Datatype::Double, &Value::Text("x".into())), None);
        assert_eq!(
            cell(Datatype::Char, &Value::Double(0.5)),
            Some("0.5".into())
        );
        assert_eq!(cell(Datatype::Char, &Value::Null), None);
    }

    #[test]
    fn short_rows_are_padded_and_long_ones_cut() {
        let columns = [("s_ra", col("s_ra")), ("s_dec", col("s_dec"))];
        let doc = results(
            &columns,
            &[
                vec![Value::Double(1.0)],
                vec![Value::Int(1), Value::Int(2), Value::Int(3)],
            ],
            false,
        );
        assert!(
            doc.contains("<TR><TD>1</TD><TD/></TR>\n<TR><TD>1</TD><TD>2</TD></TR>\n"),
            "{doc}"
        );
    }

    #[test]
    fn errors_carry_query_status_error() {
        let doc = error("unknown column \"foo\" in ivoa.obscore");
        assert_eq!(well_formed(&doc), Ok(()));
        assert!(doc.contains("<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"ERROR\">unknown column &quot;foo&quot; in ivoa.obscore</INFO>\n</RESOURCE>"), "{doc}");
    }

    #[test]
    fn vosi_documents_are_well_formed_and_complete() {
        let doc = availability(true, "");
        assert_eq!(well_formed(&doc), Ok(()));
        assert!(doc.contains("<vosi:available>true</vosi:available>") && !doc.contains("note"));
        assert!(
            availability(false, "down for maintenance")
                .contains("<vosi:note>down for maintenance</vosi:note>")
        );

        let doc = capabilities("https://node.example/tap/", 10_000, 100_000);
        assert_eq!(well_formed(&doc), Ok(()), "{doc}");
        for expected in [
            "<capability standardID=\"ivo://ivoa.net/std/TAP\" xsi:type=\"tr:TableAccess\">",
            "<accessURL use=\"base\">https://node.example/tap</accessURL>",
            "<dataModel ivo-id=\"ivo://ivoa.net/std/ObsCore#core-1.1\">",
            "<version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.1\">2.1</version>",
            "<mime>application/x-votable+xml</mime>",
            "<accessURL use=\"full\">https://node.example/tap/availability</accessURL>",
            "<accessURL use=\"full\">https://node.example/tap/capabilities</accessURL>",
            "<accessURL use=\"full\">https://node.example/tap/tables</accessURL>",
            "<languageFeatures type=\"ivo://ivoa.net/std/TAPRegExt#features-adql-string\">\n        <feature><form>ILIKE</form></feature>",
        ] {
            assert!(doc.contains(expected), "{expected}\n{doc}");
        }
        assert!(!doc.contains("uploadMethod"));

        let doc = tables();
        assert_eq!(well_formed(&doc), Ok(()), "{doc}");
        assert!(doc.contains("<name>ivoa</name>") && doc.contains("<name>ivoa.obscore</name>"));
        assert_eq!(
            doc.matches("<column>").count(),
            table::TABLES.iter().map(|t| t.columns.len()).sum::<usize>()
        );
        assert!(doc.contains("<name>s_ra</name>\n        <description>Right ascension of the centre (ICRS)</description>\n        <unit>deg</unit>\n        <ucd>pos.eq.ra</ucd>\n        <utype>obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1</utype>\n        <dataType xsi:type=\"vs:VOTableType\">double</dataType>\n        <flag>indexed</flag>\n        <flag>principal</flag>\n"), "{doc}");
        assert!(
            doc.contains("<dataType xsi:type=\"vs:VOTableType\" arraysize=\"*\">char</dataType>")
        );
    }

    fn job(phase: Phase) -> UwsJob {
        UwsJob {
            job_id: "j1".into(),
            job_url: "https://node.example/tap/async/j1".into(),
            run_id: None,
            owner_id: None,
            phase,
            creation_time: "2024-05-01T12:00:00.000Z".into(),
            start_time: Some("2024-05-01T12:00:01.000Z".into()),
            end_time: None,
            execution_duration: 600,
            destruction: None,
            query: "SELECT * FROM ivoa.obscore WHERE s_ra < 5 AND obs_id = 'a&b'".into(),
            lang: "ADQL".into(),
            maxrec: Some(100),
            error_summary: Some("unknown column \"foo\"".into()),
        }
    }

    #[test]
    fn a_jobs_parameters_and_results_stand_alone() {
        let params = uws_parameters(&job(Phase::Executing));
        assert_eq!(well_formed(&params), Ok(()), "{params}");
        assert!(params.contains("obs_id = &apos;a&amp;b&apos;"), "{params}");
        assert!(params.contains("<uws:parameter id=\"maxrec\">100</uws:parameter>"));
        let pending = uws_results(&job(Phase::Executing));
        assert_eq!(well_formed(&pending), Ok(()), "{pending}");
        assert!(!pending.contains("xlink:href"), "{pending}");
        let done = uws_results(&job(Phase::Completed));
        assert_eq!(well_formed(&done), Ok(()), "{done}");
        assert!(
            done.contains("xlink:href=\"https://node.example/tap/async/j1/results/result\""),
            "{done}"
        );
    }

    #[test]
    fn uws_job_documents_follow_the_phase() {
        let done = uws_job(&job(Phase::Completed));
        assert_eq!(well_formed(&done), Ok(()), "{done}");
        for expected in [
            "<uws:job xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\"",
            "<uws:jobId>j1</uws:jobId>\n  <uws:ownerId xsi:nil=\"true\"/>\n  <uws:phase>COMPLETED</uws:phase>",
            "<uws:startTime>2024-05-01T12:00:01.000Z</uws:startTime>\n  <uws:endTime xsi:nil=\"true\"/>",
            "<uws:parameter id=\"query\">SELECT * FROM ivoa.obscore WHERE s_ra &lt; 5 AND obs_id = &apos;a&amp;b&apos;</uws:parameter>",
            "<uws:parameter id=\"maxrec\">100</uws:parameter>",
            "<uws:result id=\"result\" xlink:type=\"simple\" xlink:href=\"https://node.example/tap/async/j1/results/result\"",
        ] {
            assert!(done.contains(expected), "{expected}\n{done}");
        }
        assert!(!done.contains("errorSummary"));

        let failed = uws_job(&job(Phase::Error));
        assert_eq!(well_formed(&failed), Ok(()), "{failed}");
        assert!(failed.contains("<uws:results/>"));
        assert!(failed.contains("<uws:errorSummary type=\"fatal\" hasDetail=\"false\">\n    <uws:message>unknown column &quot;foo&quot;</uws:message>"));

        let pending = uws_job(&job(Phase::Pending));
        assert_eq!(well_formed(&pending), Ok(()));
        assert!(!pending.contains("errorSummary") && !pending.contains("<uws:result "));
    }

    #[test]
    fn the_job_list_names_every_job_and_phase() {
        let doc = uws_jobs(&[("a".into(), Phase::Executing), ("b".into(), Phase::Aborted)]);
        assert_eq!(well_formed(&doc), Ok(()), "{doc}");
        assert!(doc.contains(
            "<uws:jobref id=\"a\">\n    <uws:phase>EXECUTING</uws:phase>\n  </uws:jobref>"
        ));
        assert!(doc.contains("<uws:phase>ABORTED</uws:phase>"));
        assert_eq!(well_formed(&uws_jobs(&[])), Ok(()));
        assert!(Phase::Error.is_final() && !Phase::Queued.is_final());
    }

    proptest! {
        #[test]
        fn doubles_round_trip(v in any::<f64>()) {
            match double(v) {
                Some(text) => prop_assert_eq!(text.parse::<f64>().ok(), Some(v)),
                None => prop_assert!(!v.is_finite()),
            }
        }

        #[test]
        fn any_text_makes_a_well_formed_document(text in any::<String>(), name in any::<String>()) {
            let doc = results(&[(name.as_str(), col("obs_id"))], &[vec![Value::Text(text.clone())]], true);
            prop_assert_eq!(well_formed(&doc), Ok(()));
            prop_assert_eq!(well_formed(&error(&text)), Ok(()));
        }
    }
}
