//! What the running node and the command line tell each other about the data plane: where
//! members' data planes were last reachable (the node learns it, `orrery dataset fetch` dials
//! them), and the peers the command line caught sending wrong bytes (the node penalises them).

use std::net::SocketAddr;

use orrery_protocol::{NodeId, PublicKey};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now};

impl Store {
    /// Records the data-plane addresses `node` announced.
    pub fn put_data_addrs(&mut self, node: NodeId, addrs: &[SocketAddr]) -> Result<(), StoreError> {
        let list: Vec<String> = addrs
            .iter()
            .take(crate::dataplane::MAX_ADDRS)
            .map(ToString::to_string)
            .collect();
        self.conn.execute(
            "INSERT INTO data_addrs (node, addrs, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (node) DO UPDATE SET addrs = excluded.addrs,
                 updated_at = excluded.updated_at",
            params![
                node.key().as_bytes().as_slice(),
                serde_json::Value::from(list).to_string(),
                now()
            ],
        )?;
        Ok(())
    }

    /// The data-plane addresses `node` last announced (none if never heard).
    pub fn data_addrs(&self, node: NodeId) -> Result<Vec<SocketAddr>, StoreError> {
        let row: Option<String> = self
            .conn
            .query_row(
                "SELECT addrs FROM data_addrs WHERE node = ?1",
                params![node.key().as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        let list: Vec<String> = row
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default();
        Ok(list
            .iter()
            .filter_map(|a| a.parse().ok())
            .take(crate::dataplane::MAX_ADDRS)
            .collect())
    }
}

/// Most offences the running node takes at one poll.
const OFFENCES_PER_POLL: i64 = 64;

impl Store {
    /// Records that `peer` sent bytes that do not match their hash, for the running node to
    /// penalise.
    pub fn record_data_offence(&self, peer: NodeId, detail: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO data_offences (peer, detail, at) VALUES (?1, ?2, ?3)",
            params![peer.key().as_bytes().as_slice(), detail, now()],
        )?;
        Ok(())
    }

    /// Takes (and deletes) the offences recorded by the command line, oldest first.
    pub fn take_data_offences(&mut self) -> Result<Vec<(NodeId, String)>, StoreError> {
        let tx = self.conn.transaction()?;
        let rows = {
            let mut stmt =
                tx.prepare("SELECT id, peer, detail FROM data_offences ORDER BY id LIMIT ?1")?;
            stmt.query_map([OFFENCES_PER_POLL], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let mut out = Vec::new();
        for (id, peer, detail) in rows {
            tx.execute("DELETE FROM data_offences WHERE id = ?1", [id])?;
            if let Ok(key) = PublicKey::from_bytes(&peer) {
                out.push((NodeId(key), detail));
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use orrery_protocol::SecretKey;

    use super::*;

    #[test]
    fn the_last_addresses_a_member_announced_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("db")).expect("store");
        let node = NodeId(SecretKey::generate().expect("random").public());
        assert!(store.data_addrs(node).expect("read").is_empty());
        let a: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let b: SocketAddr = "[::1]:4001".parse().expect("addr");
        store.put_data_addrs(node, &[a]).expect("put");
        store.put_data_addrs(node, &[a, b]).expect("put");
        assert_eq!(store.data_addrs(node).expect("read"), vec![a, b]);
    }

    #[test]
    fn offences_caught_by_the_command_line_are_taken_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("db")).expect("store");
        let peer = NodeId(SecretKey::generate().expect("random").public());
        store
            .record_data_offence(peer, "wrong bytes")
            .expect("record");
        assert_eq!(
            store.take_data_offences().expect("take"),
            vec![(peer, "wrong bytes".to_string())]
        );
        assert!(store.take_data_offences().expect("take").is_empty());
    }
}
