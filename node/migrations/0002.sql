-- The federation this node belongs to: its signed membership events, the adverts of its
-- members, and what the running node last knew of their reachability.

CREATE TABLE membership_events (
    id          INTEGER PRIMARY KEY,
    event       BLOB NOT NULL UNIQUE    -- a signed MembershipEvent, as it travels
);

CREATE TABLE adverts (
    node        BLOB PRIMARY KEY CHECK (length(node) = 32),
    advert      BLOB NOT NULL,          -- the signed NodeAdvert, as it travels
    seq         INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE peers (
    node        BLOB PRIMARY KEY CHECK (length(node) = 32),
    connected   INTEGER NOT NULL DEFAULT 0,
    last_seen   INTEGER NOT NULL DEFAULT 0,
    addrs       TEXT NOT NULL DEFAULT '[]'   -- JSON list of the multiaddrs its advert gave
) WITHOUT ROWID;

CREATE TABLE listen_addrs (
    addr        TEXT PRIMARY KEY
) WITHOUT ROWID;
