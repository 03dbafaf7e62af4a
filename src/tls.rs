//! The one TLS client set-up of every protocol mailplan speaks (LDAP, IMAP, CalDAV/CardDAV):
//! what `ca_file:` and `insecure: true` mean is decided here, once, so that a plan file's
//! connection block means the same thing whatever the URL's scheme.
//!
//! - No `ca_file`: the system's root certificates are trusted.
//! - `ca_file`: the certificates in that PEM file are trusted *instead of* the system's: naming
//!   the CA that signed a server's certificate pins that server to it. A file that holds no
//!   certificate is an error, never an empty trust store that every handshake would fail on
//!   later. A certificate in it that is the server's own (a self-signed certificate made with
//!   `openssl req -x509`, which marks itself a CA) is accepted for that server, when the name
//!   the client connects by is one the certificate names.
//! - `insecure: true`: any certificate is accepted (signatures are still checked, so the session
//!   is encrypted, but the server is not authenticated). Callers warn about it on every run.
//!
//! This module must not decide when to be insecure; the plan file does. It knows nothing of
//! the protocols; each client names the server in its own errors.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Why a TLS client set-up could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot use the CA file `{}`: {message}", path.display())]
    CaFile { path: PathBuf, message: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The client set-up for one connection block of the plan file: `ca_file` and `insecure` as
/// written there (the path already resolved against the plan file's folder).
pub fn client_config(
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if insecure {
        Arc::new(NoVerify(provider))
    } else {
        let (roots, pinned) = match ca_file {
            Some(path) => {
                let certs = read_ca_file(path)?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in &certs {
                    roots.add(cert.clone()).map_err(|e| TlsError::CaFile {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                }
                (roots, certs)
            }
            None => (system_roots().clone(), Vec::new()),
        };
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        Arc::new(Verify { webpki, pinned })
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file; none is an error.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let error = |message: String| TlsError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The system's roots, read once per process (every pooled connection would otherwise parse
/// them again). Unreadable system certificates are skipped: they cannot be trusted anyway.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

/// The usual WebPKI checks, plus one case they refuse: the server presents, as its own, a
/// certificate that `ca_file` holds byte for byte, and that certificate says it is a CA. That is
/// what `openssl req -x509` makes, and what a server with a self-signed certificate presents;
/// WebPKI refuses a CA certificate as an end entity (`CaUsedAsEndEntity`) whoever trusts it.
/// The certificate's validity period is checked before that refusal is reached, so an expired
/// one is still refused; the name is checked here.
#[derive(Debug)]
struct Verify {
    webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of `ca_file`; empty without one.
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Verify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused =
            match self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Ok(verified) => return Ok(verified),
                Err(e) => e,
            };
        let pinned = self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref());
        if !(pinned && is_ca_used_as_end_entity(&refused)) {
            return Err(refused);
        }
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether rustls refused a certificate because it is a CA's (it passes WebPKI's error on as
/// an "other" certificate error).
fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other
            .0
            .downcast_ref::<webpki::Error>()
            .is_some_and(|w| matches!(w, webpki::Error::CaUsedAsEndEntity)),
        _ => false,
    }
}

/// Accepts any certificate: signatures are still checked, so the session is encrypted, but the
/// server is not authenticated.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The reason under an I/O error from a handshake: rustls's error, which names the certificate
/// problem, rather than the I/O wrapper's text.
pub fn handshake_reason(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `openssl req -x509` as an administrator runs it for a server: a self-signed certificate
    /// for `san`, which OpenSSL marks as a CA (basicConstraints CA:TRUE).
    fn self_signed(dir: &Path, name: &str, san: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=mailplan test server", "-addext"])
            .arg(format!("subjectAltName={san}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("these tests need `openssl`: apt-get install openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (cert, key)
    }

    /// Connects to a loopback TLS server presenting `cert` as `name`, with the client set-up
    /// `config`; the error's text when the handshake fails.
    fn handshake(
        cert: &Path,
        key: &Path,
        name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<(), String> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let serve = async move {
                let (tcp, _) = listener.accept().await.unwrap();
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"hello").await;
                    let _ = tls.shutdown().await;
                }
            };
            let connect = async {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                let name = ServerName::try_from(name.to_string()).unwrap();
                let mut tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| handshake_reason(&e))?;
                let mut got = Vec::new();
                let _ = tls.read_to_end(&mut got).await;
                assert_eq!(got, b"hello");
                Ok(())
            };
            let (result, ()) = tokio::join!(connect, serve);
            result
        })
    }

    #[test]
    fn a_self_signed_certificate_given_as_ca_file_is_trusted_for_its_server_only() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "server", "IP:127.0.0.1,DNS:localhost");
        let (other, _) = self_signed(dir.path(), "other", "IP:127.0.0.1");
        let pinned = || client_config(Some(&cert), false).unwrap();

        // Its own certificate as ca_file: trusted, by either name it carries.
        assert_eq!(handshake(&cert, &key, "127.0.0.1", pinned()), Ok(()));
        assert_eq!(handshake(&cert, &key, "localhost", pinned()), Ok(()));
        // A name it does not carry is refused.
        let e = handshake(&cert, &key, "mail.example.com", pinned()).unwrap_err();
        assert!(e.contains("NotValidForName"), "{e}");
        // Another certificate as ca_file, or none (the system's roots): refused.
        let e = handshake(
            &cert,
            &key,
            "127.0.0.1",
            client_config(Some(&other), false).unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("certificate"), "{e}");
        let e = handshake(
            &cert,
            &key,
            "127.0.0.1",
            client_config(None, false).unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("certificate"), "{e}");
        // insecure: true accepts it without a ca_file.
        assert_eq!(
            handshake(&cert, &key, "127.0.0.1", client_config(None, true).unwrap()),
            Ok(())
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        match client_config(Some(&empty), false) {
            Err(TlsError::CaFile { path, message }) => {
                assert_eq!(path, empty);
                assert!(message.contains("no PEM certificate"), "{message}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            client_config(Some(&missing), false),
            Err(TlsError::CaFile { .. })
        ));
        // With insecure: true no file is read.
        assert!(client_config(Some(&missing), true).is_ok());
    }
}
