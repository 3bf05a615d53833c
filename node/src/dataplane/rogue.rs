//! A hostile data-plane peer, for tests only (feature `test-peers`): it answers requests with
//! whatever bytes it was given, under the hash and outboard of the genuine ones, without the
//! check an honest node makes as it reads. What a receiver does with wrong bytes is tested
//! against it.

use std::net::SocketAddr;

use bao_tree::io::fsm::encode_ranges;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh_blobs::protocol::Request;
use orrery_protocol::SecretKey;

use super::endpoint::{ALPN, bind, own_addrs};
use super::outboard;
use super::serve::Wire;

/// Serves `sent` as if it were `genuine`.
#[derive(Debug)]
pub struct Rogue {
    sent: Vec<u8>,
    outboard: Vec<u8>,
}

impl Rogue {
    /// A peer that claims to serve `genuine` but sends `sent` (of the same length).
    pub fn new(genuine: &[u8], sent: Vec<u8>) -> Self {
        let (_, outboard) = outboard::compute(genuine, genuine.len() as u64)
            .unwrap_or_else(|e| panic!("an outboard of test data: {e}"));
        Self { sent, outboard }
    }

    /// Starts serving on loopback with `key`'s identity; returns the router (shut it down to
    /// stop) and where it listens.
    pub async fn serve(self, key: &SecretKey) -> (Router, Vec<SocketAddr>) {
        let ep = bind(key, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|e| panic!("a rogue endpoint: {e}"));
        let addrs = own_addrs(&ep);
        (Router::builder(ep).accept(ALPN, self).spawn(), addrs)
    }
}

impl ProtocolHandler for Rogue {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let Ok((Request::Get(get), _)) = Request::read_async(&mut recv).await else {
                continue;
            };
            let Some((0, ranges)) = get.ranges.as_single() else {
                continue;
            };
            let size = self.sent.len() as u64;
            let tree = outboard::from_stored(*get.hash.as_bytes(), size, self.outboard.clone())
                .map_err(AcceptError::from_err)?;
            send.write_all(&size.to_le_bytes())
                .await
                .map_err(AcceptError::from_err)?;
            let data = bytes::Bytes::from(self.sent.clone());
            let _ = encode_ranges(data, tree, ranges, Wire(&mut send)).await;
            let _ = send.finish();
        }
        Ok(())
    }
}
