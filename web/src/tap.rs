//! IVOA TAP 1.1: synchronous queries, asynchronous jobs (UWS 1.1) and the VOSI resources.
//!
//! Parameter names are case-insensitive (DALI). Every error is a VOTable error document with
//! `QUERY_STATUS = ERROR` that says what went wrong.
//!
//! Asynchronous jobs belong to their creator ([`owner`]): a job made with a credential belongs to
//! its user alone; one made without is reached by its URL, whose random 96-bit id is the
//! capability to read, run or delete it, and listing `/tap/async` shows the jobs of the owner
//! token presented in the `orrery_tap_owner` cookie (set when a job is created without one).
//! Each IP address keeps at most 64 jobs, its oldest finished job forgotten first.

pub(crate) mod owner;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use orrery_catalog::Value;
use orrery_catalog::obscore::Column;
use orrery_catalog::votable::{self, Phase, UwsJob};

use crate::{AppState, Port};

/// Most asynchronous jobs kept at once, over all clients.
const MAX_JOBS: usize = 4096;
/// Most asynchronous jobs one client (IP address) keeps at once; past it the client's oldest
/// finished job is forgotten, and with none finished the new job is refused.
const MAX_JOBS_PER_CLIENT: usize = 64;
/// The cookie that names a job's owner: a random token set when a client without one creates
/// a job. Listing `/tap/async` shows only the jobs of the token presented; a job itself is
/// reached by its URL, whose random id is the capability (clients such as pyvo follow the
/// `Location` of the created job, and keep cookies within a session).
const OWNER_COOKIE: &str = "orrery_tap_owner";
/// How long a finished job is kept.
const JOB_LIFETIME: Duration = Duration::from_secs(3600);

/// The rows a query returned.
#[derive(Debug, Clone)]
pub struct TapTable {
    /// Output names and the columns describing them.
    pub columns: Vec<(String, Column)>,
    /// The rows.
    pub rows: Vec<Vec<Value>>,
    /// Whether more rows matched than were returned.
    pub overflow: bool,
}

/// Why a TAP query failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TapError {
    /// The query is not valid or not supported; the text says why.
    #[error("{0}")]
    Query(String),
    /// The service failed.
    #[error("{0}")]
    Service(String),
}

fn xml(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/x-votable+xml; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn plain_xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    xml(status, votable::error(message))
}

/// Longest refusal text of the HTTP layer carried into a VOTable error.
const MAX_REFUSAL_BYTES: usize = 4096;

/// Any other URL under `/tap`: a VOTable error naming the resources there are.
pub(crate) async fn unknown(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!(
            "{} is not a resource of this TAP service: it has /tap/sync, /tap/async, /tap/tables, \
             /tap/capabilities and /tap/availability",
            uri.path()
        ),
    )
}

/// Turns the plain-text refusals of the HTTP layer under `/tap` (a body over the limit, a
/// content type that is not a form, a method a resource does not take, a malformed form) into
/// VOTable error documents with the same status, so a TAP client always gets a document it reads.
pub(crate) async fn votable_errors(response: Response) -> Response {
    let status = response.status();
    let is_xml = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("xml"));
    if !(status.is_client_error() || status.is_server_error()) || is_xml {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), MAX_REFUSAL_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned()
    } else {
        text.to_owned()
    };
    error(status, &message)
}

pub(crate) async fn availability() -> Response {
    plain_xml(votable::availability(
        true,
        "the service is accepting queries",
    ))
}

pub(crate) async fn capabilities<P: Port>(State(s): State<Arc<AppState<P>>>) -> Response {
    plain_xml(votable::capabilities(
        &format!("{}/tap", s.config.base_url),
        s.config.default_maxrec,
        s.config.hard_maxrec,
    ))
}

pub(crate) async fn tables() -> Response {
    plain_xml(votable::tables())
}

/// DALI parameters, keys upper-cased.
type Params = BTreeMap<String, String>;

fn params(form: Vec<(String, String)>) -> Params {
    form.into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect()
}

/// Checks the parameters of a query and returns (ADQL, MAXREC).
fn check(p: &Params, config: &crate::WebConfig) -> Result<(String, u64), String> {
    if let Some(r) = p.get("REQUEST")
        && !r.eq_ignore_ascii_case("doQuery")
    {
        return Err(format!("REQUEST={r} is not supported; use REQUEST=doQuery"));
    }
    match p.get("LANG") {
        Some(l)
            if ["ADQL", "ADQL-2.0", "ADQL-2.1"]
                .iter()
                .any(|v| l.eq_ignore_ascii_case(v)) => {}
        Some(l) => {
            return Err(format!(
                "LANG={l} is not supported; this service speaks LANG=ADQL"
            ));
        }
        None => return Err("LANG is missing; use LANG=ADQL".into()),
    }
    for key in ["FORMAT", "RESPONSEFORMAT"] {
        if let Some(f) = p.get(key) {
            let f = f.to_ascii_lowercase();
            let ok = f == "votable"
                || f.starts_with("application/x-votable+xml")
                || f == "text/xml"
                || f == "votable/td";
            if !ok {
                return Err(format!("{key}={f} is not supported; results are VOTable"));
            }
        }
    }
    if p.contains_key("UPLOAD") {
        return Err("table uploads are not supported by this service".into());
    }
    let query = p
        .get("QUERY")
        .filter(|q| !q.trim().is_empty())
        .ok_or("QUERY is missing")?
        .clone();
    let maxrec = match p.get("MAXREC") {
        None => config.default_maxrec,
        Some(m) => m
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("MAXREC={m} is not a non-negative integer"))?
            .min(config.hard_maxrec),
    };
    Ok((query, maxrec))
}

fn table_response(t: &TapTable) -> Response {
    let columns: Vec<(&str, &Column)> = t.columns.iter().map(|(n, c)| (n.as_str(), c)).collect();
    xml(
        StatusCode::OK,
        votable::results(&columns, &t.rows, t.overflow),
    )
}

pub(crate) async fn sync<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let p = params(form);
    let (query, maxrec) = match check(&p, &s.config) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match s.port.tap(query, maxrec).await {
        Ok(t) => table_response(&t),
        Err(TapError::Query(e)) => error(StatusCode::BAD_REQUEST, &e),
        Err(TapError::Service(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

// ---- asynchronous jobs ----

struct Job {
    /// The owner token of the client that created it.
    owner: String,
    /// The user who created it, when it was made with a credential.
    user: Option<owner::JobUser>,
    /// The address it was created from, for the per-client cap.
    client: Option<std::net::IpAddr>,
    phase: Phase,
    params: Params,
    created: SystemTime,
    started: Option<SystemTime>,
    ended: Option<SystemTime>,
    result: Option<Arc<String>>,
    error: Option<String>,
}

/// The asynchronous jobs of this service, in memory: a restart forgets them.
#[derive(Default)]
pub(crate) struct Jobs {
    jobs: Mutex<BTreeMap<String, Job>>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn iso(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn job_id() -> String {
    let mut b = [0u8; 12];
    // Without randomness the counter-free id would repeat; fall back to the clock.
    if getrandom::fill(&mut b).is_err() {
        let n = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b.copy_from_slice(&n.to_le_bytes()[..12]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn uws(id: &str, j: &Job, base: &str) -> UwsJob {
    UwsJob {
        job_id: id.to_owned(),
        job_url: format!("{base}/tap/async/{id}"),
        run_id: j.params.get("RUNID").cloned(),
        owner_id: j.user.as_ref().map(|u| u.name.clone()),
        phase: j.phase,
        creation_time: iso(j.created),
        start_time: j.started.map(iso),
        end_time: j.ended.map(iso),
        execution_duration: 60,
        destruction: Some(iso(j.created + JOB_LIFETIME)),
        query: j.params.get("QUERY").cloned().unwrap_or_default(),
        lang: j.params.get("LANG").cloned().unwrap_or_default(),
        maxrec: j.params.get("MAXREC").and_then(|m| m.trim().parse().ok()),
        error_summary: j.error.clone(),
    }
}

fn expire(jobs: &mut BTreeMap<String, Job>) {
    let now = SystemTime::now();
    jobs.retain(|_, j| j.created + JOB_LIFETIME > now);
}

fn start<P: Port>(s: &Arc<AppState<P>>, id: &str) {
    let params = {
        let mut jobs = s.jobs.lock();
        let Some(job) = jobs.get_mut(id) else { return };
        if job.phase != Phase::Pending {
            return;
        }
        match check(&job.params, &s.config) {
            Ok(p) => {
                job.phase = Phase::Executing;
                job.started = Some(SystemTime::now());
                p
            }
            Err(e) => {
                job.phase = Phase::Error;
                job.ended = Some(SystemTime::now());
                job.error = Some(e);
                return;
            }
        }
    };
    let s = s.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        let (query, maxrec) = params;
        let outcome = s.port.tap(query, maxrec).await;
        let mut jobs = s.jobs.lock();
        let Some(job) = jobs.get_mut(&id) else { return };
        if job.phase != Phase::Executing {
            return; // aborted meanwhile
        }
        job.ended = Some(SystemTime::now());
        match outcome {
            Ok(t) => {
                let columns: Vec<(&str, &Column)> =
                    t.columns.iter().map(|(n, c)| (n.as_str(), c)).collect();
                job.result = Some(Arc::new(votable::results(&columns, &t.rows, t.overflow)));
                job.phase = Phase::Completed;
            }
            Err(e) => {
                job.error = Some(e.to_string());
                job.phase = Phase::Error;
            }
        }
    });
}

/// The address a request came from, when the server records it.
pub(crate) struct Client(Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The owner token the client presents in its cookie, if well formed.
fn owner_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == OWNER_COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 24 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Makes room for one more job of `client`: forgets expired jobs, then the client's oldest
/// finished job while it is at its cap (and the oldest finished job of anyone while the service
/// is full). Err says why no room could be made.
fn make_room(
    jobs: &mut BTreeMap<String, Job>,
    client: Option<std::net::IpAddr>,
) -> Result<(), &'static str> {
    expire(jobs);
    let oldest_finished = |jobs: &BTreeMap<String, Job>, mine: bool| {
        jobs.iter()
            .filter(|(_, j)| !mine || j.client == client)
            .filter(|(_, j)| matches!(j.phase, Phase::Completed | Phase::Error | Phase::Aborted))
            .min_by_key(|(_, j)| j.created)
            .map(|(id, _)| id.clone())
    };
    while jobs.values().filter(|j| j.client == client).count() >= MAX_JOBS_PER_CLIENT {
        let Some(id) = oldest_finished(jobs, true) else {
            return Err(
                "your address has too many unfinished asynchronous jobs; abort or delete some, or use /tap/sync",
            );
        };
        jobs.remove(&id);
    }
    while jobs.len() >= MAX_JOBS {
        let Some(id) = oldest_finished(jobs, false) else {
            return Err("too many asynchronous jobs are running; try again later or use /tap/sync");
        };
        jobs.remove(&id);
    }
    Ok(())
}

pub(crate) async fn create_job<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Client(client): Client,
    headers: axum::http::HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut p = params(form);
    let run = p
        .remove("PHASE")
        .is_some_and(|v| v.eq_ignore_ascii_case("RUN"));
    let user = match owner::requester(&s, &headers).await {
        Ok(who) => who.as_ref().map(owner::JobUser::from),
        Err(refused) => return refused,
    };
    let id = job_id();
    let presented = owner_token(&headers);
    let owner = presented.clone().unwrap_or_else(job_id);
    {
        let mut jobs = s.jobs.lock();
        if let Err(why) = make_room(&mut jobs, client) {
            return error(StatusCode::SERVICE_UNAVAILABLE, why);
        }
        jobs.insert(
            id.clone(),
            Job {
                owner: owner.clone(),
                user,
                client,
                phase: Phase::Pending,
                params: p,
                created: SystemTime::now(),
                started: None,
                ended: None,
                result: None,
                error: None,
            },
        );
    }
    if run {
        start(&s, &id);
    }
    let mut response =
        Redirect::to(&format!("{}/tap/async/{id}", s.config.base_url)).into_response();
    if presented.is_none()
        && let Ok(cookie) = axum::http::HeaderValue::from_str(&format!(
            "{OWNER_COOKIE}={owner}; Path=/tap; HttpOnly; SameSite=Strict"
        ))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The jobs of the owner token the client presents; none without one.
pub(crate) async fn list_jobs<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let user = match owner::requester(&s, &headers).await {
        Ok(who) => who.map(|p| p.user),
        Err(refused) => return refused,
    };
    let owner = owner_token(&headers);
    let list: Vec<(String, Phase)> = {
        let mut jobs = s.jobs.lock();
        expire(&mut jobs);
        jobs.iter()
            .filter(|(_, j)| match (&user, &j.user) {
                // A signed-in user sees their jobs; anyone sees the anonymous jobs of their
                // owner cookie.
                (Some(u), Some(ju)) => *u == ju.id,
                (_, None) => owner.as_deref() == Some(j.owner.as_str()),
                (None, Some(_)) => false,
            })
            .map(|(id, j)| (id.clone(), j.phase))
            .collect()
    };
    plain_xml(votable::uws_jobs(&list))
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such job (jobs are kept for an hour)",
    )
}

fn with_job<P: Port, T>(s: &AppState<P>, id: &str, f: impl FnOnce(&mut Job) -> T) -> Option<T> {
    s.jobs.lock().get_mut(id).map(f)
}

pub(crate) async fn job<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    let base = s.config.base_url.clone();
    match with_job(&s, &id, |j| uws(&id, j, &base)) {
        Some(job) => plain_xml(votable::uws_job(&job)),
        None => not_found(),
    }
}

pub(crate) async fn job_action<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let p = params(form);
    if p.get("ACTION")
        .is_some_and(|a| a.eq_ignore_ascii_case("DELETE"))
    {
        return delete_job(State(s), Path(id)).await;
    }
    if let Some(phase) = p.get("PHASE") {
        return set_phase_to(&s, &id, phase);
    }
    error(
        StatusCode::BAD_REQUEST,
        "POST to a job takes ACTION=DELETE or PHASE=RUN|ABORT",
    )
}

pub(crate) async fn delete_job<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    if s.jobs.lock().remove(&id).is_none() {
        return not_found();
    }
    Redirect::to(&format!("{}/tap/async", s.config.base_url)).into_response()
}

pub(crate) async fn job_phase<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    match with_job(&s, &id, |j| j.phase) {
        Some(phase) => (
            [(header::CONTENT_TYPE, "text/plain")],
            phase.as_str().to_owned(),
        )
            .into_response(),
        None => not_found(),
    }
}

fn set_phase_to<P: Port>(s: &Arc<AppState<P>>, id: &str, phase: &str) -> Response {
    if !s.jobs.lock().contains_key(id) {
        return not_found();
    }
    if phase.eq_ignore_ascii_case("RUN") {
        start(s, id);
    } else if phase.eq_ignore_ascii_case("ABORT") {
        with_job(s, id, |j| {
            if matches!(j.phase, Phase::Pending | Phase::Queued | Phase::Executing) {
                j.phase = Phase::Aborted;
                j.ended = Some(SystemTime::now());
            }
        });
    } else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("PHASE={phase} is not RUN or ABORT"),
        );
    }
    Redirect::to(&format!("{}/tap/async/{id}", s.config.base_url)).into_response()
}

pub(crate) async fn set_phase<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let p = params(form);
    match p.get("PHASE") {
        Some(phase) => set_phase_to(&s, &id, phase),
        None => error(
            StatusCode::BAD_REQUEST,
            "PHASE is missing; use PHASE=RUN or PHASE=ABORT",
        ),
    }
}

pub(crate) async fn job_results<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    let base = s.config.base_url.clone();
    match with_job(&s, &id, |j| uws(&id, j, &base)) {
        Some(job) => plain_xml(votable::uws_results(&job)),
        None => not_found(),
    }
}

pub(crate) async fn job_result<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    match with_job(&s, &id, |j| j.result.clone()) {
        Some(Some(r)) => xml(StatusCode::OK, r.as_ref().clone()),
        Some(None) => error(StatusCode::NOT_FOUND, "the job has no result (yet)"),
        None => not_found(),
    }
}

pub(crate) async fn job_error<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    match with_job(&s, &id, |j| j.error.clone()) {
        Some(Some(e)) => error(StatusCode::OK, &e),
        Some(None) => error(StatusCode::NOT_FOUND, "the job has no error"),
        None => not_found(),
    }
}

pub(crate) async fn job_parameters<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    let base = s.config.base_url.clone();
    match with_job(&s, &id, |j| uws(&id, j, &base)) {
        Some(job) => plain_xml(votable::uws_parameters(&job)),
        None => not_found(),
    }
}

/// `POST /tap/async/{id}/parameters`: sets parameters of a job still `PENDING` (UWS 1.1 §2.2.3);
/// a `PHASE=RUN` among them starts it after. A job in any other phase refuses with a VOTable
/// error and keeps its parameters.
pub(crate) async fn set_parameters<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut p = params(form);
    let run = p
        .remove("PHASE")
        .is_some_and(|v| v.eq_ignore_ascii_case("RUN"));
    let updated = with_job(&s, &id, |j| {
        if j.phase != Phase::Pending {
            return Err(j.phase);
        }
        j.params.extend(p);
        Ok(())
    });
    match updated {
        None => return not_found(),
        Some(Err(phase)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the job is {}: parameters may be changed only while it is PENDING",
                    phase.as_str()
                ),
            );
        }
        Some(Ok(())) => {}
    }
    if run {
        start(&s, &id);
    }
    Redirect::to(&format!("{}/tap/async/{id}", s.config.base_url)).into_response()
}

fn text<P: Port>(s: &AppState<P>, id: &str, f: impl FnOnce(&Job) -> String) -> Response {
    match with_job(s, id, |j| f(j)) {
        Some(t) => ([(header::CONTENT_TYPE, "text/plain")], t).into_response(),
        None => not_found(),
    }
}

pub(crate) async fn job_quote<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    text(&s, &id, |_| String::new())
}

pub(crate) async fn job_duration<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    text(&s, &id, |_| "60".into())
}

pub(crate) async fn job_destruction<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    text(&s, &id, |j| iso(j.created + JOB_LIFETIME))
}

pub(crate) async fn job_owner<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    text(&s, &id, |j| {
        j.user.as_ref().map(|u| u.name.clone()).unwrap_or_default()
    })
}
