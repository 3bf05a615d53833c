-- The node's store: authors, projects, and each project's verified history.
--
-- A project's history is a compacted automerge document (snapshots) plus the changes that
-- arrived since (changes), and the seals that cover them (seals). Every row here was verified
-- before it was written.

CREATE TABLE authors (
    id          BLOB PRIMARY KEY CHECK (length(id) = 32),
    name        TEXT NOT NULL,
    profile     BLOB NOT NULL,          -- the self-signed profile, as it travels
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE projects (
    id          BLOB PRIMARY KEY CHECK (length(id) = 32),
    title       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE snapshots (
    project     BLOB PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    doc         BLOB NOT NULL,          -- automerge save()
    written_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE changes (
    id          INTEGER PRIMARY KEY,    -- arrival order
    project     BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    hash        BLOB NOT NULL CHECK (length(hash) = 32),
    bytes       BLOB NOT NULL,
    UNIQUE (project, hash)
);

CREATE TABLE seals (
    id          INTEGER PRIMARY KEY,
    project     BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    signer      BLOB NOT NULL CHECK (length(signer) = 32),
    payload     BLOB NOT NULL,
    signature   BLOB NOT NULL CHECK (length(signature) = 64),
    UNIQUE (project, signature)
);
