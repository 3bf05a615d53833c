-- One-time sign-in links an operator hands to a user (`orrery user link`): each opens one
-- browser session, once, before it expires. Only the hash of the code is kept.
CREATE TABLE sign_in_links (
    hash        BLOB PRIMARY KEY CHECK (length(hash) = 32),
    user        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  INTEGER NOT NULL
);
