//! Where members' data planes were last reachable, as the running node learned it, for the
//! command line (`orrery dataset fetch` dials them itself).

use std::net::SocketAddr;

use orrery_protocol::NodeId;
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
}
