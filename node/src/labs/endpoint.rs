//! Where a lab's server is reached from the node: a Unix socket in the lab's run directory (a
//! lab on this machine), or a pod's address in the cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

use orrery_web::LabIo;

/// Where a running lab's Jupyter Server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket on this machine (the local sandbox: no TCP port per lab).
    Unix(PathBuf),
    /// An address in the cluster's pod network (the Kubernetes backend).
    Tcp(SocketAddr),
}

impl Endpoint {
    /// A connection to the server.
    pub async fn connect(&self) -> std::io::Result<Box<dyn LabIo>> {
        Ok(match self {
            Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            Endpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
        })
    }

    /// Whether the server may be listening yet: a socket file exists once the server made it;
    /// an address is always worth a try.
    pub fn present(&self) -> bool {
        match self {
            Endpoint::Unix(path) => path.exists(),
            Endpoint::Tcp(_) => true,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}
