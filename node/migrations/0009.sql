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
-- Peers the command line caught sending bytes that do not match their hash (`orrery dataset
-- fetch`): the running node takes them at its next poll and penalises each through the
-- federation, as it does for what it catches itself.
CREATE TABLE data_offences (
    id      INTEGER PRIMARY KEY,
    peer    BLOB NOT NULL CHECK (length(peer) = 32),
    detail  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
