-- What keeps a project from replicating between this node and a peer, as the running node last
-- saw it: since when, and why. `to`: the peer refused what this node sent, or it could not be
-- delivered; `from`: this node refused what the peer sent. A row goes once a frame passes
-- again. `orrery project show` and `orrery federation status` show them.
CREATE TABLE replication_problems (
    project     BLOB NOT NULL CHECK (length(project) = 32),
    peer        BLOB NOT NULL CHECK (length(peer) = 32),
    direction   TEXT NOT NULL CHECK (direction IN ('to', 'from')),
    since       INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (project, peer, direction)
) WITHOUT ROWID;
