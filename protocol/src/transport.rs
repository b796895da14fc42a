//! QUIC transport: the server's key pair and certificate, certificate pinning on the client,
//! quinn endpoint configuration, and async frame I/O on a QUIC stream.

use crate::error::DecodeError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// ALPN protocol id of rgpu.
pub const ALPN: &[u8] = b"rgpu/1";
/// Name in the server certificate.
pub const SERVER_NAME: &str = "rgpu-server";

/// Transport errors.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// File I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Certificate generation.
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    /// TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The stored identity is unusable.
    #[error("server identity in {0} is unusable: {1}")]
    BadIdentity(String, String),
    /// quinn configuration.
    #[error("QUIC configuration: {0}")]
    Config(String),
}

/// Writes a file readable by its owner only (0600), replacing it atomically.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp-rgpu");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `sha256:<hex>` of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut s = String::from("sha256:");
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A random token of 32 bytes in hex.
pub fn random_token() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The server's key pair and self-signed certificate.
pub struct Identity {
    /// Certificate (DER).
    pub cert: CertificateDer<'static>,
    /// Private key (PKCS#8 DER).
    pub key: Vec<u8>,
}

impl Identity {
    /// Loads `cert.der`/`key.der` from `dir`, creating them on first start.
    pub fn load_or_create(dir: &Path) -> Result<Identity, TransportError> {
        std::fs::create_dir_all(dir)?;
        let (cp, kp) = (dir.join("cert.der"), dir.join("key.der"));
        if cp.exists() && kp.exists() {
            let cert = std::fs::read(&cp)?;
            let key = std::fs::read(&kp)?;
            if cert.is_empty() || key.is_empty() {
                return Err(TransportError::BadIdentity(
                    dir.display().to_string(),
                    "empty cert.der or key.der".into(),
                ));
            }
            return Ok(Identity {
                cert: CertificateDer::from(cert),
                key,
            });
        }
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])?;
        let cert = ck.cert.der().to_vec();
        let key = ck.signing_key.serialize_der();
        write_private(&kp, &key)?;
        write_private(&cp, &cert)?;
        Ok(Identity {
            cert: CertificateDer::from(cert),
            key,
        })
    }

    /// Fingerprint of the certificate.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }
}

fn transport_config(idle: Duration, keep_alive: Option<Duration>) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(idle).expect("idle timeout in range"),
    ));
    t.keep_alive_interval(keep_alive);
    // Bulk copies: windows sized for a fast LAN / loopback.
    t.stream_receive_window(quinn::VarInt::from_u32(64 << 20));
    t.receive_window(quinn::VarInt::from_u32(128 << 20));
    t.send_window(128 << 20);
    t
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server endpoint configuration. `idle` bounds how long a silent (dead) client keeps its session.
pub fn server_config(id: &Identity, idle: Duration) -> Result<quinn::ServerConfig, TransportError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.clone()));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![id.cert.clone()], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let qc = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TransportError::Config(e.to_string()))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(qc));
    sc.transport_config(Arc::new(transport_config(idle, Some(idle / 3))));
    Ok(sc)
}

/// Pins the server certificate by SHA-256 fingerprint (or accepts any in insecure mode), while
/// still verifying the handshake signature so only the key holder can present the certificate.
#[derive(Debug)]
struct PinnedVerifier {
    pin: Option<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) if fingerprint(end_entity).eq_ignore_ascii_case(pin) => {
                Ok(ServerCertVerified::assertion())
            }
            Some(_) => Err(rustls::Error::General(format!(
                "server certificate {} does not match the pinned fingerprint",
                fingerprint(end_entity)
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        _m: &[u8],
        _c: &CertificateDer<'_>,
        _d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not allowed".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client configuration pinning `fingerprint` (`None`: insecure, any certificate).
pub fn client_config(
    fingerprint: Option<&str>,
    idle: Duration,
) -> Result<quinn::ClientConfig, TransportError> {
    let prov = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(prov.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
            pin: fingerprint.map(str::to_string),
            provider: prov,
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let qc = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TransportError::Config(e.to_string()))?;
    let mut cc = quinn::ClientConfig::new(Arc::new(qc));
    cc.transport_config(Arc::new(transport_config(idle, Some(idle / 4))));
    Ok(cc)
}

/// Errors of frame I/O on a stream.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the stream cleanly between frames.
    #[error("stream closed")]
    Closed,
    /// Reading failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// Writing failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// The frame is invalid.
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// Reads one frame payload (without the length prefix), enforcing `max`.
pub async fn read_frame(rx: &mut quinn::RecvStream, max: u32) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    match rx.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(FrameError::Closed),
        // The peer closed the connection on purpose (e.g. a client process exiting).
        Err(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::LocallyClosed,
        ))) => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let n = crate::wire::check_len(u32::from_le_bytes(len), max)?;
    let mut buf = vec![0u8; n];
    rx.read_exact(&mut buf).await?;
    Ok(buf)
}
