//! rustls settings for the service port: the server's certificate chain and key, an optional
//! CA for client certificates (mutual TLS), and ALPN offering h2 and http/1.1 so gRPC and plain
//! HTTP callers share the port.

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

use crate::pem::{certificates, provider, read, roots};

/// The server's TLS settings from PEM files; errors name the configuration key.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates("tls.cert", cert)?;
    let pem = read("tls.key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("tls.key: {} is not a PEM private key: {e}", key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = roots("tls.client_ca", ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("tls.client_ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(|e| format!("tls.key: does not match tls.cert or cannot be used: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
