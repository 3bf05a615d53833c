//! Making a node and its authors: what `orrery init` and `orrery author new` do, as functions.

use orrery_protocol::{AuthorId, AuthorProfile, NodeId, Orcid, SecretKey, Signed};

use crate::config::{Config, ConfigError};
use crate::home::{Home, KeyFileError, write_key};
use crate::store::{Store, StoreError};

/// Why a node or author could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The data directory already holds a node.
    #[error(
        "{0} already holds an Orrery node; refusing to overwrite it (choose another --data-dir)"
    )]
    Exists(String),
    /// A key file failed.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The profile is invalid.
    #[error(transparent)]
    Profile(#[from] orrery_protocol::ProfileError),
    /// A key could not be generated.
    #[error(transparent)]
    Random(#[from] orrery_protocol::KeyError),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Creates a node in `home`: key, configuration, database. Refuses to overwrite.
pub fn init(home: &Home, config: &Config) -> Result<NodeId, SetupError> {
    if home.config().exists() || home.node_key().exists() {
        return Err(SetupError::Exists(home.root().display().to_string()));
    }
    config.validate()?;
    let io = |source| SetupError::Io {
        path: home.root().display().to_string(),
        source,
    };
    std::fs::create_dir_all(home.root()).map_err(io)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.root(), std::fs::Permissions::from_mode(0o700))
            .map_err(io)?;
    }
    let key = SecretKey::generate()?;
    write_key(&home.node_key(), &key)?;
    std::fs::write(home.config(), config.to_commented_toml()).map_err(|source| SetupError::Io {
        path: home.config().display().to_string(),
        source,
    })?;
    Store::open(&home.database())?;
    Ok(NodeId(key.public()))
}

/// Creates an author on the node in `home`: a key file and a self-signed profile.
pub fn new_author(
    home: &Home,
    store: &mut Store,
    name: &str,
    orcid: Option<Orcid>,
    affiliation: Option<String>,
) -> Result<AuthorId, SetupError> {
    let key = SecretKey::generate()?;
    let author = AuthorId(key.public());
    let profile = AuthorProfile {
        author,
        name: name.to_string(),
        orcid,
        affiliation,
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    profile.validate()?;
    write_key(&home.author_key(&author), &key)?;
    store.add_author(&Signed::sign(&key, profile))?;
    Ok(author)
}
