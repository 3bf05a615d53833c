//! HTTPS for the HTTP face: the same routes over TLS 1.3 (rustls with aws-lc-rs, the provider
//! the federation's QUIC already uses), from a certificate chain and private key in PEM files.
//!
//! The files are read once, at start: a renewed certificate takes effect when the node
//! restarts. Operators who prefer a reverse proxy terminate TLS there instead
//! (`deploy/nginx/orrery.conf`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How long open connections get to finish when the node stops.
const DRAIN: Duration = Duration::from_secs(10);

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file holds no PEM object of the kind needed, or cannot be read.
    #[error("{path}: {what}: {source}", path = path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
        /// The reader's complaint.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key).
    #[error("the certificate {} and key {} do not make a TLS identity: {source}", cert.display(), key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's complaint.
        #[source]
        source: rustls::Error,
    },
}

/// A certificate chain and its key, checked by rustls and ready to serve.
#[derive(Clone)]
pub struct TlsIdentity {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or SEC1),
    /// and checks that they belong together.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        fn pem(
            path: &Path,
            what: &'static str,
        ) -> impl Fn(rustls_pki_types::pem::Error) -> TlsError {
            let path = path.to_path_buf();
            move |source| TlsError::Pem {
                path: path.clone(),
                what,
                source,
            }
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(pem(cert, "certificate"))?
            .take(16)
            .collect::<Result<_, _>>()
            .map_err(pem(cert, "certificate"))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.to_path_buf(),
            });
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(pem(key, "private key"))?;
        let rejected = |source| TlsError::Rejected {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(rejected)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// Serves the routes over TLS on `listener` until `shutdown` completes, then gives open
/// connections a few seconds to finish.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    identity: TlsIdentity,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(DRAIN));
    });
    // TCP_NODELAY under TLS too (see `serve`).
    let acceptor =
        axum_server::tls_rustls::RustlsAcceptor::new(RustlsConfig::from_config(identity.config))
            .acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::from_tcp(listener.into_std()?)?
        .acceptor(acceptor)
        .handle(handle)
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
