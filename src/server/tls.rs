//! The TLS server configuration (rustls): the certificate chain and key from `[sip] tls_cert`
//! and `tls_key` (PEM), created self-signed for `public_address` when neither file exists.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ServeError;
use crate::config::Config;

fn error(path: &Path, reason: impl ToString) -> ServeError {
    ServeError::Tls {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The rustls server configuration for the SIP TLS listener.
pub(super) fn server_config(config: &Config) -> Result<Arc<ServerConfig>, ServeError> {
    let (cert, key) = (&config.sip.tls_cert, &config.sip.tls_key);
    match (cert.exists(), key.exists()) {
        (false, false) => create_self_signed(config, cert, key)?,
        (true, false) => return Err(error(key, "missing (the certificate exists; give its key)")),
        (false, true) => {
            return Err(error(
                cert,
                "missing (the key exists; give its certificate)",
            ));
        }
        (true, true) => {}
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| error(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(cert, e))?;
    if chain.is_empty() {
        return Err(error(cert, "no certificate in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| error(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| error(key, format!("does not fit the certificate: {e}")))?;
    Ok(Arc::new(server))
}

/// Writes a self-signed certificate for `public_address` (and `localhost`) and its key.
fn create_self_signed(config: &Config, cert: &Path, key: &Path) -> Result<(), ServeError> {
    let names = vec![
        config.sip.public_address.to_string(),
        "localhost".to_owned(),
    ];
    let signed = rcgen::generate_simple_self_signed(names).map_err(|e| error(cert, e))?;
    for path in [cert, key] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| error(path, e))?;
        }
    }
    std::fs::write(cert, signed.cert.pem()).map_err(|e| error(cert, e))?;
    write_private(key, signed.signing_key.serialize_pem().as_bytes())?;
    tracing::warn!(
        cert = %cert.display(),
        key = %key.display(),
        "no TLS certificate configured: created a self-signed one (phones must be told to accept it)"
    );
    Ok(())
}

/// Writes `bytes` to `path` readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| error(path, e))?;
    file.write_all(bytes).map_err(|e| error(path, e))
}
