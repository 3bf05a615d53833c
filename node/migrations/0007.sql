-- Peers this node banned for repeated offences, as the running node recorded them: since when,
-- until when, and why. `orrery federation status` shows the bans that have not ended.
CREATE TABLE peer_bans (
    peer    BLOB PRIMARY KEY CHECK (length(peer) = 32),
    since   INTEGER NOT NULL,
    until   INTEGER NOT NULL,
    reason  TEXT NOT NULL
) WITHOUT ROWID;
