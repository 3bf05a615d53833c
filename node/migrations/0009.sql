-- The data plane. `collections.holders`: which member nodes may fetch the collection's files
-- over the data plane, as a JSON list of node ids; NULL lets every member of the federation
-- fetch them (`orrery dataset policy`). `fetched_products`: the files `orrery dataset fetch` brought to this
-- node from another one, verified against the catalog's BLAKE3, and where they are kept.
ALTER TABLE collections ADD COLUMN holders TEXT;
CREATE TABLE fetched_products (
    product     TEXT PRIMARY KEY,             -- collection/path at the node it came from
    origin      BLOB NOT NULL CHECK (length(origin) = 32),
    blake3      BLOB NOT NULL CHECK (length(blake3) = 32),
    size        INTEGER NOT NULL,
    path        TEXT NOT NULL,                -- the verified file on this node
    fetched_at  INTEGER NOT NULL
) WITHOUT ROWID;
-- Where each member's data plane was last reachable, as it answered the running node over the
-- control plane (JSON list of socket addresses): the command line dials them for
-- `orrery dataset fetch`.
CREATE TABLE data_addrs (
    node        BLOB PRIMARY KEY CHECK (length(node) = 32),
    addrs       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
