//! The handle to a running node: what the command line, the HTTP face and tests ask of it.

use super::*;

impl NodeHandle {
    pub(super) async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, NodeError>>) -> Command,
    ) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Says where a local author is in a project (a notebook, a cell, the caret in it, or gone
    /// when `active` is false): signed by the author and sent to the nodes that hold the
    /// project; never stored.
    pub async fn set_presence(
        &self,
        author: AuthorId,
        project: ProjectId,
        notebook: Option<String>,
        cell: Option<String>,
        caret: Option<orrery_protocol::presence::Caret>,
        active: bool,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::SetPresence {
            author,
            project,
            notebook,
            cell,
            caret,
            active,
            reply,
        })
        .await
    }

    /// Tells the node that `author` is one of its users (a first sign-in, or a user made
    /// beside the running node): it hosts them, and says so in its advert, from now on.
    pub async fn learn_author(&self, author: AuthorId) {
        let _ = self.tx.send(Command::LearnAuthor { author }).await;
    }

    /// Who is in a project now, as far as this node knows.
    pub async fn presence(&self, project: ProjectId) -> Result<Vec<Presence>, NodeError> {
        self.call(|reply| Command::WhoIsIn { project, reply }).await
    }

    /// Where the node serves HTTP (TAP at `/tap`).
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// Searches this node's catalog and, unless `local`, every member whose advert can match,
    /// waiting at most `deadline` for them.
    pub async fn search(
        &self,
        query: Query,
        local: bool,
        deadline: Duration,
    ) -> Result<FederatedResults, NodeError> {
        query
            .validate()
            .map_err(crate::catalog::CatalogError::from)?;
        // This node's own answers are reused while its catalog is unchanged; a federated
        // answer is always asked afresh, so a member that just went away is named at once.
        let cache = &self.readers.cache;
        if local && let Some(answer) = cache.get(&query) {
            return Ok((*answer).clone());
        }
        let generation = cache.generation();
        let answer = self
            .call(|reply| Command::Search {
                query: query.clone(),
                local,
                deadline,
                reply,
            })
            .await?;
        if local {
            cache.put(&query, generation, &answer);
        }
        Ok(answer)
    }

    /// Runs an ADQL query on this node's `ivoa.obscore`.
    pub async fn tap(
        &self,
        adql: String,
        maxrec: u64,
    ) -> Result<crate::catalog::tap::TapRows, crate::catalog::tap::TapQueryError> {
        let readers = self.readers.clone();
        let (tx, rx) = oneshot::channel();
        let _ = readers
            .run(move |c| {
                let _ = tx.send(crate::catalog::tap::run(&c.conn, &adql, maxrec));
                Ok(())
            })
            .await;
        rx.await.unwrap_or_else(|_| {
            Err(crate::catalog::tap::TapQueryError::Catalog(
                crate::catalog::CatalogError::Timeout(crate::catalog::tap::TAP_DEADLINE),
            ))
        })
    }

    /// The file of a product this node holds, opened confined to its collection.
    pub async fn product_file(
        &self,
        collection: String,
        path: String,
    ) -> Result<Option<crate::catalog::ProductFile>, crate::catalog::CatalogError> {
        self.readers
            .run(move |c| c.product_file(&collection, &path))
            .await
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Founds a federation with this node as its first member.
    pub async fn create_federation(&self, name: &str) -> Result<(), NodeError> {
        let name = name.to_string();
        self.call(|reply| Command::CreateFederation { name, reply })
            .await
    }

    /// Issues an invitation for a named node or for a one-time code.
    pub async fn invite(
        &self,
        invitee: Option<NodeId>,
        code: Option<[u8; 32]>,
        ttl_secs: i64,
    ) -> Result<InviteToken, NodeError> {
        self.call(|reply| Command::Invite {
            invitee,
            code,
            ttl_secs,
            reply,
        })
        .await
    }

    /// Joins a federation with an invitation.
    pub async fn join(&self, token: InviteToken) -> Result<(), NodeError> {
        self.call(|reply| Command::Join { token, reply }).await
    }

    /// Removes a member.
    pub async fn remove(&self, node: NodeId) -> Result<(), NodeError> {
        self.call(|reply| Command::Remove { node, reply }).await
    }

    /// Creates a project owned by a local author.
    pub async fn create_project(
        &self,
        author: AuthorId,
        title: &str,
        visibility: Visibility,
    ) -> Result<ProjectId, NodeError> {
        let title = title.to_string();
        self.call(|reply| Command::CreateProject {
            author,
            title,
            visibility,
            reply,
        })
        .await
    }

    /// Edits a project as a local author; the edit is durable and on its way to peers when
    /// this returns.
    pub async fn edit(
        &self,
        project: ProjectId,
        author: AuthorId,
        edit: impl FnOnce(&mut Project, &Session) -> Result<(), EditError> + Send + 'static,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::Edit {
            project,
            author,
            part: None,
            edit: Box::new(edit),
            reply,
        })
        .await
    }

    /// Like [`NodeHandle::edit`], under the author's actor with session part `part`: a
    /// browser's live session edits under an actor of its own, so that its changes never
    /// share sequence numbers with the author's other sessions.
    pub async fn edit_in(
        &self,
        project: ProjectId,
        author: AuthorId,
        part: [u8; orrery_crdt::session::SESSION_LEN],
        edit: impl FnOnce(&mut Project, &Session) -> Result<(), EditError> + Send + 'static,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::Edit {
            project,
            author,
            part: Some(part),
            edit: Box::new(edit),
            reply,
        })
        .await
    }

    /// Reads a project (or `None` if not held here).
    pub async fn read<T: Send + 'static>(
        &self,
        project: ProjectId,
        read: impl FnOnce(Option<&Project>) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        let f: ReadFn = Box::new(move |p| {
            let _ = reply.send(read(p));
        });
        self.tx
            .send(Command::Read { project, read: f })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Reads every project held here, in no particular order.
    pub async fn read_all<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut dyn Iterator<Item = &Project>) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        let f: ReadAllFn = Box::new(move |all| {
            let _ = reply.send(read(all));
        });
        self.tx
            .send(Command::ReadAll { read: f })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// The federation as seen from this node.
    pub async fn status(&self) -> Result<orrery_federation::Status, NodeError> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// The names of the nodes this node knows: the members, by the names they joined under,
    /// and itself.
    pub async fn node_names(&self) -> HashMap<NodeId, String> {
        let mut names: HashMap<NodeId, String> = self
            .status()
            .await
            .map(|s| s.members.into_iter().map(|m| (m.node, m.name)).collect())
            .unwrap_or_default();
        names.insert(self.id, self.name.to_string());
        names
    }

    /// Stops the node (the federation actor and the node actor).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}
