//! TLS for the webhook: rustls with TLS 1.2/1.3 only, ALPN h2 + http/1.1,
//! and a certificate that can be replaced while the server runs. New
//! handshakes pick up the new certificate; established connections keep
//! theirs, so nothing in flight fails.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Metrics;
use crate::watch::poll_files;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("no certificate found in the PEM data")]
    NoCertificate,
    #[error("no private key found in the PEM data")]
    NoKey,
    #[error("invalid PEM: {0}")]
    Pem(#[from] std::io::Error),
    #[error("certificate and key are unusable together: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA unusable: {0}")]
    ClientCa(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and key, checking that they belong together.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..]).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])?.ok_or(TlsError::NoKey)?;
    Ok(CertifiedKey::from_der(certs, key, &provider())?)
}

/// The certificate in use; swapped atomically on rotation.
#[derive(Debug)]
pub struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
}

impl ReloadingCert {
    pub fn new(initial: CertifiedKey) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(initial),
        })
    }

    pub fn replace(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server's TLS settings. With `client_ca` (PEM), a client may present
/// a certificate signed by it; the handshake still succeeds without one
/// (kube-apiserver calls the webhooks without), and the routes that need
/// one check the [`crate::http::VerifiedClient`] mark the accept loop puts on requests.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    client_ca: Option<&[u8]>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                roots.add(cert?)?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate);
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder.with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Polls the certificate and key files and swaps in each new valid pair. A
/// half-written or mismatched pair (cert updated, key not yet) is skipped and
/// retried on the next tick; the old certificate stays in use meanwhile.
pub async fn watch_files(
    cert: Arc<ReloadingCert>,
    cert_path: PathBuf,
    key_path: PathBuf,
    interval: Duration,
    metrics: Metrics,
    stop: CancellationToken,
) {
    // What is on disk now is the certificate the server started with.
    poll_files([&cert_path, &key_path], interval, stop, true, |read| match read {
        Ok(files) => match certified_key(&files[0], &files[1]) {
            Ok(key) => {
                cert.replace(key);
                metrics.tls_reloads.inc();
                tracing::info!(cert = %cert_path.display(), "serving certificate reloaded");
                true
            }
            Err(e) => {
                metrics.tls_reload_errors.inc();
                tracing::warn!(error = %e, "new certificate files are not usable yet; keeping the current certificate");
                false
            }
        },
        Err(e) => {
            metrics.tls_reload_errors.inc();
            tracing::warn!(error = %e, "cannot read certificate files; keeping the current certificate");
            true
        }
    })
    .await;
}
