//! TLS for `rediss://` stores: which certificate authorities a connection trusts.
//!
//! A `rediss://` URL connects over TLS (rustls). By default the server's certificate must chain
//! to a public root (the webpki roots, as for the Airtable client), which is what managed Redis
//! and Valkey services present. A server signed by a private CA is trusted through [`RedisCa`]
//! (setting `redis_ca_file`), which then replaces the public roots.

use redis::{Client, RedisResult, TlsCertificates};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The certificate authorities (PEM) a `rediss://` connection trusts instead of the public
/// roots.
///
/// ```
/// use podium_cache_core::store::RedisCa;
/// let err = RedisCa::from_pem("not a certificate").unwrap_err();
/// assert!(err.to_string().contains("no PEM certificate"));
/// ```
#[derive(Clone)]
pub struct RedisCa {
    pem: Vec<u8>,
    certificates: usize,
}

/// Why a [`RedisCa`] was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisCaError {
    /// The text holds no `-----BEGIN CERTIFICATE-----` block.
    #[error("no PEM certificate in it (expected -----BEGIN CERTIFICATE----- blocks)")]
    NoCertificate,
    /// A certificate block is malformed.
    #[error("a PEM certificate could not be read: {0}")]
    Malformed(String),
}

impl RedisCa {
    /// The CA certificates in `pem` (one or more `CERTIFICATE` blocks; other blocks are
    /// skipped). A text without any certificate is refused, so a wrong file (a key, an empty
    /// file) is an error now rather than every connection failing later.
    pub fn from_pem(pem: impl Into<Vec<u8>>) -> Result<Self, RedisCaError> {
        let pem = pem.into();
        let mut certificates = 0;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            certificate.map_err(|e| RedisCaError::Malformed(e.to_string()))?;
            certificates += 1;
        }
        if certificates == 0 {
            return Err(RedisCaError::NoCertificate);
        }
        Ok(Self { pem, certificates })
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.certificates
    }

    /// Always false: a [`RedisCa`] holds at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.certificates == 0
    }

    /// What the redis crate's TLS connector takes.
    pub(crate) fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: None,
            root_cert: Some(self.pem.clone()),
        }
    }
}

impl std::fmt::Debug for RedisCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCa")
            .field("certificates", &self.certificates)
            .finish()
    }
}

/// A client for `url`, trusting `ca` when given (the URL must then be `rediss://`).
pub(crate) fn client(url: &str, ca: Option<&RedisCa>) -> RedisResult<Client> {
    match ca {
        Some(ca) => Client::build_with_tls(url, ca.certificates()),
        None => Client::open(url),
    }
}
