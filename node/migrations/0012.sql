-- Preservation: the policies this node sets for the collections it publishes (each signed by the
-- node, carried in its advert), and the copies it keeps of other members' collections, file by
-- file, with when each was last checked against its BLAKE3.
CREATE TABLE preservation_policies (
    collection  TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    policy      BLOB NOT NULL
);
CREATE TABLE preserved_files (
    publisher   BLOB NOT NULL,
    collection  TEXT NOT NULL,
    path        TEXT NOT NULL,
    blake3      BLOB NOT NULL,
    size        INTEGER NOT NULL,
    checked_at  INTEGER NOT NULL,
    intact      INTEGER NOT NULL,
    PRIMARY KEY (publisher, collection, path)
);
-- A copy as a whole: how many files its publisher listed when it was last fetched.
CREATE TABLE preserved_copies (
    publisher   BLOB NOT NULL,
    collection  TEXT NOT NULL,
    files       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (publisher, collection)
);
