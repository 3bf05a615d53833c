//! Peers banned for repeated offences, as the running node records them for the command line.

use orrery_protocol::{NodeId, PublicKey};
use rusqlite::params;

use super::{Store, StoreError, now};

/// A ban that has not ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerBan {
    /// The banned peer.
    pub peer: NodeId,
    /// When it was banned (seconds since the epoch).
    pub since: i64,
    /// When the ban ends (seconds since the epoch).
    pub until: i64,
    /// The offence that banned it, in words.
    pub reason: String,
}

impl Store {
    /// Records that `peer` is banned for `secs` seconds from now, for `reason`.
    pub fn record_ban(&mut self, peer: NodeId, secs: u64, reason: &str) -> Result<(), StoreError> {
        let since = now();
        let until = since.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
        self.conn.execute(
            "INSERT INTO peer_bans (peer, since, until, reason) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (peer) DO UPDATE
             SET since = excluded.since, until = excluded.until, reason = excluded.reason",
            params![peer.key().as_bytes().as_slice(), since, until, reason],
        )?;
        Ok(())
    }

    /// The bans that have not ended, latest first.
    pub fn bans(&self) -> Result<Vec<PeerBan>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT peer, since, until, reason FROM peer_bans WHERE until > ?1
             ORDER BY since DESC",
        )?;
        let rows = stmt.query_map(params![now()], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (peer, since, until, reason) = row?;
            let Ok(key) = PublicKey::from_bytes(&peer) else {
                continue;
            };
            let peer = NodeId(key);
            out.push(PeerBan {
                peer,
                since,
                until,
                reason,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use orrery_protocol::SecretKey;

    use super::*;

    #[test]
    fn a_ban_is_listed_until_it_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("db")).expect("store");
        let peer = NodeId(SecretKey::generate().expect("random").public());
        let gone = NodeId(SecretKey::generate().expect("random").public());
        store
            .record_ban(peer, 3600, "forged changes")
            .expect("record");
        store.record_ban(gone, 0, "spam").expect("record");
        let bans = store.bans().expect("bans");
        assert_eq!(bans.len(), 1, "{bans:?}");
        assert_eq!(bans[0].peer, peer);
        assert_eq!(bans[0].reason, "forged changes");
        assert!(bans[0].until >= bans[0].since + 3600);
        store.record_ban(peer, 60, "again").expect("again");
        let bans = store.bans().expect("bans");
        assert_eq!(bans[0].reason, "again");
    }
}
