//! How the commands reach a running server: the URL (`http://` or `https://`), the key from
//! `LEADROUTER_KEY` (sent as `authorization: Bearer …`; never a flag, so it stays out of shell
//! history and process lists) and, for a private CA, `LEADROUTER_CA` (a PEM file).

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Adds the caller's key to every call.
#[derive(Debug, Clone)]
pub struct KeyHeader(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for KeyHeader {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

pub type Authed = InterceptedService<Channel, KeyHeader>;

impl KeyHeader {
    /// From `LEADROUTER_KEY`, when set.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("LEADROUTER_KEY") {
            Ok(k) if !k.trim().is_empty() => {
                let v = format!("Bearer {}", k.trim())
                    .parse()
                    .map_err(|_| anyhow::anyhow!("LEADROUTER_KEY: not a valid key"))?;
                Ok(Self(Some(v)))
            }
            _ => Ok(Self(None)),
        }
    }
}

/// A channel to `url` carrying the key.
pub async fn connect(url: &str) -> anyhow::Result<Authed> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("--server: {url:?} is not a URL"))?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Ok(ca) = std::env::var("LEADROUTER_CA") {
            let pem = std::fs::read(&ca).with_context(|| format!("LEADROUTER_CA: reading {ca}"))?;
            tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the server at {url}"))?;
    Ok(InterceptedService::new(channel, KeyHeader::from_env()?))
}
