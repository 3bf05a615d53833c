-- People who sign in to this node, each bound to one author key the node holds; the identities
-- (OpenID issuer and subject) they sign in with; API tokens for scripts (only a hash is kept);
-- and browser sessions (likewise).
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    author      BLOB NOT NULL UNIQUE CHECK (length(author) = 32),
    created_at  INTEGER NOT NULL,
    -- The node's signed attestation of the user's ORCID iD, when they signed in with ORCID.
    orcid_attestation BLOB
);
CREATE TABLE identities (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (issuer, subject)
) WITHOUT ROWID;
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    user        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash        BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    last_used   INTEGER,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    hash        BLOB PRIMARY KEY CHECK (length(hash) = 32),
    user        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
