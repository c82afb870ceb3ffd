//! Certificates for a TLS `redis-server`, made at run time (feature `tls`).
//!
//! [`TestCertificates::generate`] makes a fresh certificate authority and a server certificate
//! it signs for `127.0.0.1` and `localhost` (ECDSA P-256, rcgen on ring), and writes them as PEM
//! files in a temporary directory, removed when the handle is dropped. Each call makes a new,
//! unrelated CA, so a second one is the "wrong CA" a client must refuse.
//!
//! ```no_run
//! # fn demo() -> Result<(), podium_local::HarnessError> {
//! use podium_local::redis::RedisServer;
//! use podium_local::tls::TestCertificates;
//! let certificates = TestCertificates::generate()?;
//! let server = RedisServer::start_tls(&certificates.files())?;
//! println!("{} trusts {}", server.url(), certificates.ca_file().display());
//! # Ok(()) }
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::redis::TlsFiles;
use crate::HarnessError;

/// A throw-away CA and a server certificate for `127.0.0.1`, as PEM files.
#[derive(Debug)]
pub struct TestCertificates {
    dir: PathBuf,
    ca_pem: String,
}

impl TestCertificates {
    /// Makes a new CA and a server certificate it signs, and writes `ca.pem`, `server.pem`
    /// and `server.key` into a new temporary directory.
    pub fn generate() -> Result<Self, HarnessError> {
        let failed = |e: rcgen::Error| HarnessError::Certificate(e.to_string());
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "podium-local test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(failed)?)
            .map_err(failed)?;

        let server_key = KeyPair::generate().map_err(failed)?;
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(failed)?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "podium-local redis-server");
        let server = server_params.signed_by(&server_key, &ca).map_err(failed)?;

        let suffix: u64 = rand::thread_rng().gen();
        let dir =
            std::env::temp_dir().join(format!("podium-tls-{}-{suffix:016x}", std::process::id()));
        fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
        let certificates = Self {
            dir,
            ca_pem: ca.pem(),
        };
        certificates.write("ca.pem", &certificates.ca_pem)?;
        certificates.write("server.pem", &server.pem())?;
        certificates.write("server.key", &server_key.serialize_pem())?;
        Ok(certificates)
    }

    fn write(&self, name: &str, contents: &str) -> Result<(), HarnessError> {
        let path = self.dir.join(name);
        fs::write(&path, contents)
            .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))
    }

    /// The files a TLS `redis-server` is started with ([`crate::RedisServer::start_tls`]).
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
            ca: self.ca_file(),
        }
    }

    /// The CA certificate file (PEM): what a client must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
