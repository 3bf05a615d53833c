//! Local authors: those the node found at start, and those made while it runs (a user's first
//! sign-in makes one, and `orrery author new` may run beside the node).

use super::*;

impl NodeActor {
    /// The editing session of a local author, learning an author made since the node started:
    /// their key and profile are read, and the advert is renewed so that other nodes know this
    /// node now hosts them.
    pub(super) async fn session_of(&mut self, author: AuthorId) -> Result<Session, NodeError> {
        if let Some(s) = self.sessions.get(&author) {
            return Ok(s.clone());
        }
        let authors = self.store.run(|s| s.authors()).await?;
        let row = authors
            .into_iter()
            .find(|a| a.id == author)
            .ok_or(NodeError::NoAuthor(author))?;
        let key = read_key(&self.home.author_key(&author))?;
        let session = Session::new(key.clone()).map_err(|e| NodeError::Config(e.to_string()))?;
        self.sessions.insert(author, session.clone());
        self.profiles.insert(author, row.profile);
        self.author_keys.push((author, key));
        info!(author = %author.short(), "a new local author (a first sign-in, or made beside the running node)");
        self.publish_advert().await;
        Ok(session)
    }
}
