//! GraphQL at `/graphql` (queries over HTTP POST, subscriptions over WebSocket at
//! `/graphql/ws`, both `graphql-transport-ws` and the older `graphql-ws` protocol), with the
//! GraphiQL page at `/graphql` for a browser (built from the npm package into the UI, never
//! loaded from a CDN).
//!
//! It offers what the node's public face offers: federated search, the federation, and live
//! notice of changes to public projects and to this node's catalog. Operations on labs and on
//! projects that need a signed-in user come with accounts.

use async_graphql::futures_util::Stream;
use async_graphql::{Context, Enum, InputObject, Object, Schema, SimpleObject, Subscription};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use orrery_catalog::{Cone, Page, Query, TimeRange};
use tokio::sync::broadcast;

use crate::backend::Shared;

/// Most hits one search may return through GraphQL.
const MAX_LIMIT: u32 = 200;
/// Deepest a query may nest (the standard introspection query needs about 15), and most fields it
/// may ask for: bounds what one request costs.
const MAX_DEPTH: usize = 24;
const MAX_COMPLEXITY: usize = 2000;

/// Something that changed, as the node tells its subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebEvent {
    /// A public project changed; its new heads.
    ProjectChanged {
        /// The project id.
        project: String,
        /// Its heads after the change.
        heads: Vec<String>,
    },
    /// This node's catalog changed.
    CatalogChanged,
    /// The node's events came faster than they could be passed on: some were missed.
    Lagged,
}

/// The schema served at `/graphql`.
pub(crate) type OrrerySchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

pub(crate) fn schema(backend: Shared) -> OrrerySchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(backend)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The facets a search can filter on and count (the catalog's `Facet`, as GraphQL names it).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "orrery_catalog::Facet")]
pub(crate) enum FacetName {
    Mission,
    Instrument,
    ProductType,
    Band,
    Licence,
    Publisher,
    Node,
}

/// A cone on the sky, in degrees.
#[derive(InputObject)]
pub(crate) struct ConeInput {
    ra: f64,
    dec: f64,
    radius: f64,
}

/// Products matching every value listed for one facet.
#[derive(InputObject)]
pub(crate) struct FilterInput {
    facet: FacetName,
    values: Vec<String>,
}

/// One product found.
#[derive(SimpleObject)]
pub(crate) struct HitGql {
    id: String,
    collection: String,
    title: String,
    mission: Option<String>,
    instrument: Option<String>,
    product_type: Option<String>,
    target: Option<String>,
    ra: Option<f64>,
    dec: Option<f64>,
    /// Observation start, MJD.
    t_min: Option<f64>,
    /// Observation end, MJD.
    t_max: Option<f64>,
    size: u64,
    blake3: String,
    licence: Option<String>,
    node: Option<String>,
    node_name: Option<String>,
    /// Where its file is served.
    url: Option<String>,
}

/// How many matches have one facet value.
#[derive(SimpleObject)]
pub(crate) struct FacetValue {
    value: String,
    count: u64,
}

/// The counts of one facet.
#[derive(SimpleObject)]
pub(crate) struct FacetCounts {
    facet: FacetName,
    values: Vec<FacetValue>,
}

/// A node that did not answer a federated search, and why.
#[derive(SimpleObject)]
pub(crate) struct Missing {
    node: String,
    reason: String,
}

/// The answer to a search.
#[derive(SimpleObject)]
pub(crate) struct SearchAnswer {
    /// Every match, not only this page.
    total: u64,
    hits: Vec<HitGql>,
    facets: Vec<FacetCounts>,
    /// The nodes that answered.
    answered: Vec<String>,
    /// The nodes asked that did not answer.
    missing: Vec<Missing>,
}

/// A collection a member publishes.
#[derive(SimpleObject)]
pub(crate) struct CollectionGql {
    id: String,
    title: String,
    products: u64,
    bytes: u64,
    missions: Option<Vec<String>>,
    complete: bool,
}

/// A lab environment a member offers.
#[derive(SimpleObject)]
pub(crate) struct ComputeGql {
    environment: String,
    cores: u32,
    memory_mib: u64,
    gpus: u32,
    free_slots: u32,
}

/// A member node.
#[derive(SimpleObject)]
pub(crate) struct MemberGql {
    node: String,
    name: String,
    institution: String,
    /// `this_node`, `connected`, `last_seen` or `never_seen`.
    reach: String,
    collections: Vec<CollectionGql>,
    compute: Vec<ComputeGql>,
}

/// The federation this node belongs to.
#[derive(SimpleObject)]
pub(crate) struct FederationGql {
    name: String,
    id: String,
    this_node: String,
    members: Vec<MemberGql>,
}

/// A change to a public project or to this node's catalog.
#[derive(SimpleObject, Clone)]
pub(crate) struct Change {
    /// `project` or `catalog`.
    kind: String,
    /// The project, for a project change.
    project: Option<String>,
    /// The project's heads after the change.
    heads: Vec<String>,
}

fn backend<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Shared> {
    ctx.data::<Shared>()
}

pub(crate) struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The caller's labs on this node (ESA Datalabs' `datalabs`).
    async fn datalabs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<crate::api::LabView>> {
        let who = caller(ctx).ok_or_else(|| refusal(crate::ApiError::unauthenticated()))?;
        if !who.scopes.iter().any(|s| s == "labs") {
            return Err(refusal(crate::ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "insufficient_scope",
                "this credential may not use labs: make a token with the `labs` scope",
            )));
        }
        match backend(ctx)?
            .labs(who, crate::api::LabCall::List)
            .await
            .map_err(refusal)?
        {
            crate::api::LabAnswer::Labs(l) => Ok(l),
            other => Err(format!("the node answered {other:?}").into()),
        }
    }

    /// Who is asking: the signed-in user (a session or an API token), or null.
    async fn me(&self, ctx: &Context<'_>) -> Option<crate::Principal> {
        caller(ctx)
    }

    /// The projects the caller may see on this node: the public ones, and their own.
    async fn projects(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::api::ProjectSummary>> {
        backend(ctx)?.projects(caller(ctx)).await.map_err(refusal)
    }

    /// A project the caller may see: members and notebooks.
    async fn project(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<crate::api::ProjectView> {
        match backend(ctx)?
            .read_project(caller(ctx), id, crate::api::ProjectRead::Project)
            .await
            .map_err(refusal)?
        {
            crate::api::ProjectAnswer::Project(p) => Ok(p),
            other => Err(format!("the node answered {other:?}").into()),
        }
    }

    /// A notebook of a project the caller may see, with its cells.
    async fn notebook(
        &self,
        ctx: &Context<'_>,
        project: String,
        id: String,
    ) -> async_graphql::Result<crate::api::NotebookView> {
        match backend(ctx)?
            .read_project(caller(ctx), project, crate::api::ProjectRead::Notebook(id))
            .await
            .map_err(refusal)?
        {
            crate::api::ProjectAnswer::Notebook(nb) => Ok(nb),
            other => Err(format!("the node answered {other:?}").into()),
        }
    }

    /// Searches the federation's catalogs (this node's only with `local`).
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        ctx: &Context<'_>,
        text: Option<String>,
        cone: Option<ConeInput>,
        filters: Option<Vec<FilterInput>>,
        #[graphql(desc = "Earliest observation, MJD")] time_start: Option<f64>,
        #[graphql(desc = "Latest observation, MJD")] time_end: Option<f64>,
        #[graphql(default = 0)] offset: u32,
        #[graphql(default = 20)] limit: u32,
        #[graphql(default = false)] local: bool,
    ) -> async_graphql::Result<SearchAnswer> {
        if limit > MAX_LIMIT {
            return Err(format!("limit may be at most {MAX_LIMIT}; page with offset").into());
        }
        let mut query = Query {
            text,
            cone: cone.map(|c| Cone {
                ra: c.ra,
                dec: c.dec,
                radius: c.radius,
            }),
            time: (time_start.is_some() || time_end.is_some()).then_some(TimeRange {
                start: time_start,
                end: time_end,
            }),
            page: Page { offset, limit },
            facets: true,
            ..Query::default()
        };
        for f in filters.unwrap_or_default() {
            query.filters.insert(f.facet.into(), f.values);
        }
        query.validate().map_err(|e| e.to_string())?;
        let r = backend(ctx)?
            .search(query, local, std::time::Duration::from_secs(3))
            .await?;
        Ok(SearchAnswer {
            total: r.results.total,
            hits: r
                .results
                .hits
                .into_iter()
                .map(|h| HitGql {
                    id: h.id,
                    collection: h.collection,
                    title: h.title,
                    mission: h.mission,
                    instrument: h.instrument,
                    product_type: h.product_type,
                    target: h.target,
                    ra: h.ra,
                    dec: h.dec,
                    t_min: h.t_min,
                    t_max: h.t_max,
                    size: h.size,
                    blake3: h.blake3,
                    licence: h.licence,
                    node: h.node,
                    node_name: h.node_name,
                    url: h.url,
                })
                .collect(),
            facets: r
                .results
                .facets
                .into_iter()
                .map(|(facet, values)| FacetCounts {
                    facet: facet.into(),
                    values: values
                        .into_iter()
                        .map(|v| FacetValue {
                            value: v.value,
                            count: v.count,
                        })
                        .collect(),
                })
                .collect(),
            answered: r.answered,
            missing: r
                .missing
                .into_iter()
                .map(|(node, reason)| Missing { node, reason })
                .collect(),
        })
    }

    /// The federation this node belongs to (null when it belongs to none).
    async fn federation(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<FederationGql>> {
        let Some(v) = backend(ctx)?.federation().await? else {
            return Ok(None);
        };
        Ok(Some(FederationGql {
            name: v.name,
            id: v.id,
            this_node: v.this_node,
            members: v
                .members
                .into_iter()
                .map(|m| MemberGql {
                    node: m.node,
                    name: m.name,
                    institution: m.institution,
                    reach: match m.reach {
                        crate::Reach::ThisNode => "this_node",
                        crate::Reach::Connected => "connected",
                        crate::Reach::LastSeen { .. } => "last_seen",
                        crate::Reach::NeverSeen => "never_seen",
                    }
                    .into(),
                    collections: m
                        .collections
                        .into_iter()
                        .map(|c| CollectionGql {
                            id: c.id,
                            title: c.title,
                            products: c.products,
                            bytes: c.bytes,
                            missions: c.missions,
                            complete: c.complete,
                        })
                        .collect(),
                    compute: m
                        .compute
                        .into_iter()
                        .map(|c| ComputeGql {
                            environment: c.environment,
                            cores: c.cores,
                            memory_mib: c.memory_mib,
                            gpus: c.gpus,
                            free_slots: c.free_slots,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }
}

pub(crate) struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Changes to public projects (one project's with `project`) and to this node's catalog,
    /// as they happen. A subscriber too slow to keep up is told it missed some (`kind: lagged`).
    async fn changes(
        &self,
        ctx: &Context<'_>,
        project: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = Change> + use<>> {
        let rx = backend(ctx)?.events();
        let wanted = project;
        Ok(futures::stream::unfold(rx, move |mut rx| {
            let wanted = wanted.clone();
            async move {
                loop {
                    let change = match rx.recv().await {
                        Ok(WebEvent::ProjectChanged { project, heads }) => {
                            if wanted.as_ref().is_some_and(|w| *w != project) {
                                continue;
                            }
                            Change {
                                kind: "project".into(),
                                project: Some(project),
                                heads,
                            }
                        }
                        Ok(WebEvent::CatalogChanged) => {
                            if wanted.is_some() {
                                continue;
                            }
                            Change {
                                kind: "catalog".into(),
                                project: None,
                                heads: Vec::new(),
                            }
                        }
                        Ok(WebEvent::Lagged) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            Change {
                                kind: "lagged".into(),
                                project: None,
                                heads: Vec::new(),
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    return Some((change, rx));
                }
            }
        }))
    }
}

/// `POST /graphql`: a query.
/// What `/graphql` is served with: the schema, and the node to ask who a request comes from.
#[derive(Clone)]
pub(crate) struct GqlState {
    pub(crate) schema: OrrerySchema,
    pub(crate) backend: Shared,
}

/// Who a request comes from (`None`: anonymous), as the resolvers see it, and whether it may
/// change anything: sent with an API token, or with the session cookie from this node's own
/// pages (never from another site's).
struct Caller(Option<crate::Principal>, bool);

fn caller<'a>(ctx: &Context<'a>) -> Option<crate::Principal> {
    ctx.data::<Caller>().ok().and_then(|c| c.0.clone())
}

/// The user behind a change, with the `labs` scope.
fn lab_user(ctx: &Context<'_>) -> async_graphql::Result<crate::Principal> {
    let c = ctx.data::<Caller>()?;
    let who =
        c.0.clone()
            .ok_or_else(|| refusal(crate::ApiError::unauthenticated()))?;
    if !c.1 {
        return Err(refusal(crate::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf",
            "a change made with a session cookie must come from this node's own pages",
        )));
    }
    if !who.scopes.iter().any(|s| s == "labs") {
        return Err(refusal(crate::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "insufficient_scope",
            "this credential may not use labs: make a token with the `labs` scope",
        )));
    }
    Ok(who)
}

fn one_lab(a: crate::api::LabAnswer) -> async_graphql::Result<crate::api::LabView> {
    match a {
        crate::api::LabAnswer::Lab(l) => Ok(l),
        other => Err(format!("the node answered {other:?}").into()),
    }
}

/// Changes: labs, under the names ESA Datalabs gives them.
pub(crate) struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Starts a lab next to its data (`sapId`: the environment, `jupyter` if not given;
    /// `datasets`: collections, read-only under `/data`), on this node or on the member that
    /// holds them. Answers once it runs or failed, with its reason.
    async fn create_datalab(
        &self,
        ctx: &Context<'_>,
        sap_id: Option<String>,
        datasets: Option<Vec<String>>,
    ) -> async_graphql::Result<crate::api::LabView> {
        let who = lab_user(ctx)?;
        let new = crate::api::NewLab {
            environment: sap_id,
            datasets: datasets.unwrap_or_default(),
        };
        one_lab(
            backend(ctx)?
                .labs(who, crate::api::LabCall::Create(new))
                .await
                .map_err(refusal)?,
        )
    }

    /// Stops a lab (`cid`: its id); its workspace stays.
    async fn destroy_datalab(
        &self,
        ctx: &Context<'_>,
        cid: String,
    ) -> async_graphql::Result<crate::api::LabView> {
        let who = lab_user(ctx)?;
        one_lab(
            backend(ctx)?
                .labs(who, crate::api::LabCall::Stop(cid))
                .await
                .map_err(refusal)?,
        )
    }
}

/// An API refusal as a GraphQL error, with its stable code in `extensions.code`.
fn refusal(e: crate::ApiError) -> async_graphql::Error {
    let code = e.code;
    use async_graphql::ErrorExtensions;
    async_graphql::Error::new(e.message).extend_with(|_, ext| ext.set("code", code))
}

/// `POST /graphql`. A credential, when sent, must be valid; what it may read follows the user.
pub(crate) async fn execute(
    State(state): State<GqlState>,
    headers: HeaderMap,
    request: async_graphql_axum::GraphQLRequest,
) -> Response {
    let who = match crate::api::guard::reader(&state.backend, &headers).await {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    let may_change = match crate::auth::credential(&headers) {
        Some(crate::Credential::Session(_)) => {
            crate::api::guard::same_origin(&headers, state.backend.base_url())
        }
        _ => true,
    };
    let request = request.into_inner().data(Caller(who, may_change));
    async_graphql_axum::GraphQLResponse::from(state.schema.execute(request).await).into_response()
}

/// `GET /graphql`: the GraphiQL page for a browser.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    let _ = headers;
    crate::ui::page("graphiql.html").await.into_response()
}
