//! The privileged API's credentials: the TLS certificate and the bearer token,
//! kept where the Datadog Agent keeps them so that both share one set.
//!
//! - Certificate: `ipc_cert_file_path` holds a PEM certificate chain and its
//!   private key in one file (the Agent's `ipc_cert.pem`). If the file does not
//!   exist a self-signed certificate for `localhost`/`127.0.0.1` is generated in
//!   memory at start (never written: the core Agent owns that file).
//! - Token: `auth_token_file_path` holds the token. If the file does not exist it
//!   is created (mode 0600, exclusively) with 64 random hex digits.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use ring::rand::SecureRandom as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The shortest token accepted from an existing file (the Agent's own minimum).
const MIN_TOKEN_LEN: usize = 32;

/// A TLS acceptor from `ipc_cert_file_path`, or from a fresh self-signed certificate.
pub fn load_or_generate_tls(cert_path: &Path) -> anyhow::Result<TlsAcceptor> {
    let (certs, key) = if cert_path.exists() {
        let certs = read_ipc_certificates(cert_path)?;
        if certs.is_empty() {
            anyhow::bail!("{} has no PEM certificate (`ipc_cert_file_path`)", cert_path.display());
        }
        let key = PrivateKeyDer::from_pem_file(cert_path).with_context(|| {
            format!(
                "could not read a private key from {} (`ipc_cert_file_path` must hold the certificate and its key)",
                cert_path.display()
            )
        })?;
        (certs, key)
    } else {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .context("could not generate a self-signed certificate for the privileged API")?;
        tracing::info!(
            ipc_cert_file_path = %cert_path.display(),
            "Generated a self-signed certificate for the privileged API (no IPC certificate file found)."
        );
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
        (vec![generated.cert.der().clone()], key)
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS provider supports no protocol version")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| format!("the certificate and key in {} do not match", cert_path.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The PEM certificates in `ipc_cert_file_path`: the privileged API's, which
/// the CLI trusts to reach it.
pub fn read_ipc_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "could not read certificates from {} (`ipc_cert_file_path`)",
                path.display()
            )
        })
}

/// The bearer token from `auth_token_file_path`, creating the file if absent.
pub fn load_or_create_auth_token(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            if token.len() < MIN_TOKEN_LEN {
                anyhow::bail!(
                    "the auth token in {} is shorter than {MIN_TOKEN_LEN} characters; remove the file to have one \
                     generated (`auth_token_file_path`)",
                    path.display()
                );
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_token(path),
        Err(e) => Err(e).with_context(|| {
            format!(
                "could not read the auth token {} (`auth_token_file_path`)",
                path.display()
            )
        }),
    }
}

fn create_token(path: &Path) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut file) => {
            file.write_all(token.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("could not write the auth token {}", path.display()))?;
            tracing::info!(auth_token_file_path = %path.display(), "Created a new auth token for the privileged API.");
            Ok(token)
        }
        // Another process (the core Agent) created it meanwhile: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_auth_token(path),
        Err(e) => Err(e).with_context(|| {
            format!(
                "could not create the auth token {} (`auth_token_file_path`; does its directory exist?)",
                path.display()
            )
        }),
    }
}

/// Compares a presented token with the expected one in time independent of
/// where they differ (the length is not secret: tokens are 64 hex digits).
///
/// The fold has no data-dependent branch: in the optimised x86_64 and armv7
/// code the loop's only exit is its count, and `black_box` keeps the result
/// from being tested early. (ring's `constant_time::verify_slices_are_equal`
/// is deprecated, "with no promises regarding side channels".)
pub fn tokens_match(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    let diff = presented.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_missing_token_file_is_created_private_with_64_hex_digits_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_token");
        let token = load_or_create_auth_token(&path).unwrap();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create_auth_token(&path).unwrap(), token);
    }

    #[test]
    fn a_short_token_or_a_missing_directory_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_token");
        std::fs::write(&path, "short\n").unwrap();
        let err = load_or_create_auth_token(&path).unwrap_err().to_string();
        assert!(err.contains("auth_token_file_path"), "{err}");
        let err = load_or_create_auth_token(&dir.path().join("nope/auth_token"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth_token_file_path"), "{err}");
    }

    #[test]
    fn token_comparison_needs_every_byte_equal() {
        assert!(tokens_match(b"abcdef", b"abcdef"));
        assert!(!tokens_match(b"abcdeg", b"abcdef"));
        assert!(!tokens_match(b"bbcdef", b"abcdef"));
        assert!(!tokens_match(b"abcde", b"abcdef"));
        assert!(!tokens_match(b"", b"abcdef"));
    }

    #[test]
    fn a_certificate_file_with_its_key_is_loaded_and_a_missing_one_is_generated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipc_cert.pem");
        load_or_generate_tls(&path).expect("generated when missing");
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(
            &path,
            format!("{}{}", generated.cert.pem(), generated.key_pair.serialize_pem()),
        )
        .unwrap();
        load_or_generate_tls(&path).expect("loaded from the file");
        std::fs::write(&path, generated.cert.pem()).unwrap();
        let err = format!("{:#}", load_or_generate_tls(&path).err().expect("no key"));
        assert!(err.contains("ipc_cert_file_path"), "{err}");
    }
}
