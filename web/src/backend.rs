//! The node's port as an object-safe trait, for the parts of the HTTP face whose handlers are not
//! generic over the [`Port`]: the REST API (its handlers are registered with their OpenAPI
//! descriptions) and GraphQL (its resolvers find the node in the schema's data).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use orrery_catalog::{FederatedResults, Query};
use tokio::sync::broadcast;

use crate::api::{
    ApiError, CreatedToken, LabAnswer, LabCall, NewProject, NewToken, ProjectAnswer, ProjectEdit,
    ProjectRead, ProjectSummary, TokenView,
};
use crate::{AppState, Credential, FederationView, Port, Principal, WebEvent};

/// What the REST API and GraphQL need of the node.
pub(crate) trait Backend: Send + Sync {
    fn base_url(&self) -> &str;
    /// Browsers signed into labs' origins.
    fn lab_sessions(&self) -> &crate::lab_proxy::Sessions;
    fn authenticate(&self, c: Credential) -> BoxFuture<'_, Result<Option<Principal>, String>>;
    fn search(
        &self,
        query: Query,
        local: bool,
        deadline: Duration,
    ) -> BoxFuture<'_, Result<FederatedResults, String>>;
    fn federation(&self) -> BoxFuture<'_, Result<Option<FederationView>, String>>;
    fn events(&self) -> broadcast::Receiver<WebEvent>;
    fn projects(
        &self,
        who: Option<Principal>,
    ) -> BoxFuture<'_, Result<Vec<ProjectSummary>, ApiError>>;
    fn create_project(
        &self,
        who: Principal,
        new: NewProject,
    ) -> BoxFuture<'_, Result<ProjectSummary, ApiError>>;
    fn read_project(
        &self,
        who: Option<Principal>,
        project: String,
        read: ProjectRead,
    ) -> BoxFuture<'_, Result<ProjectAnswer, ApiError>>;
    fn edit_project(
        &self,
        who: Principal,
        project: String,
        edit: ProjectEdit,
    ) -> BoxFuture<'_, Result<ProjectAnswer, ApiError>>;
    fn run_cell(
        &self,
        who: Principal,
        cell: crate::api::CellAddress,
        outputs: futures::channel::mpsc::UnboundedSender<serde_json::Value>,
    ) -> BoxFuture<'_, Result<crate::api::RunView, ApiError>>;
    fn jobs(
        &self,
        who: Principal,
        call: crate::api::JobCall,
    ) -> BoxFuture<'_, Result<crate::api::JobAnswer, ApiError>>;
    fn tokens(&self, who: Principal) -> BoxFuture<'_, Result<Vec<TokenView>, ApiError>>;
    fn create_token(
        &self,
        who: Principal,
        new: NewToken,
    ) -> BoxFuture<'_, Result<CreatedToken, ApiError>>;
    fn revoke_token(&self, who: Principal, id: String) -> BoxFuture<'_, Result<(), ApiError>>;
    fn sign_out(&self, session: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// The OpenID providers users may sign in with.
    fn providers(&self) -> Vec<crate::oidc::ProviderConfig>;
    fn labs(&self, who: Principal, call: LabCall) -> BoxFuture<'_, Result<LabAnswer, ApiError>>;
    fn lab_events(
        &self,
        who: Principal,
    ) -> BoxFuture<'_, Result<futures::stream::BoxStream<'static, crate::api::LabProgress>, ApiError>>;
    fn lab_connect(
        &self,
        who: Principal,
        lab: String,
    ) -> BoxFuture<'_, Result<crate::LabConnection, ApiError>>;
    fn live(
        &self,
        who: Principal,
        project: String,
        notebook: String,
        resume: crate::live::Resume,
    ) -> BoxFuture<'_, Result<Box<dyn crate::live::LiveNotebook>, ApiError>>;
}

/// The shared form the handlers hold.
pub(crate) type Shared = Arc<dyn Backend>;

/// The [`Backend`] over a node's [`Port`].
pub(crate) struct Over<P>(pub(crate) Arc<AppState<P>>);

impl<P: Port> Backend for Over<P> {
    fn base_url(&self) -> &str {
        &self.0.config.base_url
    }
    fn lab_sessions(&self) -> &crate::lab_proxy::Sessions {
        &self.0.labs
    }
    fn authenticate(&self, c: Credential) -> BoxFuture<'_, Result<Option<Principal>, String>> {
        Box::pin(self.0.port.authenticate(c))
    }
    fn search(
        &self,
        query: Query,
        local: bool,
        deadline: Duration,
    ) -> BoxFuture<'_, Result<FederatedResults, String>> {
        Box::pin(self.0.port.search(query, local, deadline))
    }
    fn federation(&self) -> BoxFuture<'_, Result<Option<FederationView>, String>> {
        Box::pin(self.0.port.federation())
    }
    fn events(&self) -> broadcast::Receiver<WebEvent> {
        self.0.port.events()
    }
    fn projects(
        &self,
        who: Option<Principal>,
    ) -> BoxFuture<'_, Result<Vec<ProjectSummary>, ApiError>> {
        Box::pin(self.0.port.projects(who))
    }
    fn create_project(
        &self,
        who: Principal,
        new: NewProject,
    ) -> BoxFuture<'_, Result<ProjectSummary, ApiError>> {
        Box::pin(self.0.port.create_project(who, new))
    }
    fn read_project(
        &self,
        who: Option<Principal>,
        project: String,
        read: ProjectRead,
    ) -> BoxFuture<'_, Result<ProjectAnswer, ApiError>> {
        Box::pin(self.0.port.read_project(who, project, read))
    }
    fn edit_project(
        &self,
        who: Principal,
        project: String,
        edit: ProjectEdit,
    ) -> BoxFuture<'_, Result<ProjectAnswer, ApiError>> {
        Box::pin(self.0.port.edit_project(who, project, edit))
    }
    fn run_cell(
        &self,
        who: Principal,
        cell: crate::api::CellAddress,
        outputs: futures::channel::mpsc::UnboundedSender<serde_json::Value>,
    ) -> BoxFuture<'_, Result<crate::api::RunView, ApiError>> {
        Box::pin(self.0.port.run_cell(who, cell, outputs))
    }
    fn jobs(
        &self,
        who: Principal,
        call: crate::api::JobCall,
    ) -> BoxFuture<'_, Result<crate::api::JobAnswer, ApiError>> {
        Box::pin(self.0.port.jobs(who, call))
    }
    fn tokens(&self, who: Principal) -> BoxFuture<'_, Result<Vec<TokenView>, ApiError>> {
        Box::pin(self.0.port.tokens(who))
    }
    fn create_token(
        &self,
        who: Principal,
        new: NewToken,
    ) -> BoxFuture<'_, Result<CreatedToken, ApiError>> {
        Box::pin(self.0.port.create_token(who, new))
    }
    fn revoke_token(&self, who: Principal, id: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(self.0.port.revoke_token(who, id))
    }
    fn sign_out(&self, session: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(self.0.port.sign_out(session))
    }
    fn providers(&self) -> Vec<crate::oidc::ProviderConfig> {
        self.0.port.providers()
    }
    fn labs(&self, who: Principal, call: LabCall) -> BoxFuture<'_, Result<LabAnswer, ApiError>> {
        Box::pin(self.0.port.labs(who, call))
    }
    fn lab_events(
        &self,
        who: Principal,
    ) -> BoxFuture<'_, Result<futures::stream::BoxStream<'static, crate::api::LabProgress>, ApiError>>
    {
        Box::pin(self.0.port.lab_events(who))
    }
    fn lab_connect(
        &self,
        who: Principal,
        lab: String,
    ) -> BoxFuture<'_, Result<crate::LabConnection, ApiError>> {
        Box::pin(self.0.port.lab_connect(who, lab))
    }
    fn live(
        &self,
        who: Principal,
        project: String,
        notebook: String,
        resume: crate::live::Resume,
    ) -> BoxFuture<'_, Result<Box<dyn crate::live::LiveNotebook>, ApiError>> {
        Box::pin(self.0.port.live(who, project, notebook, resume))
    }
}
