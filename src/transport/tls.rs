//! Optional TLS between nodes (rustls, TLS 1.3, the ring provider).
//!
//! # What is verified
//!
//! Mutual TLS against one cluster CA: every node has a certificate chain
//! and its key, and trusts only the CA configured (not the system's
//! roots). On every connection, before the hello:
//!
//! - the dialer checks that the acceptor's chain leads to the CA and that
//!   its certificate names the IP address dialed (an IP subject
//!   alternative name). Peers are added by address and names are resolved
//!   once, when the peer is added, so the IP dialed is the name checked: a
//!   node's certificate names every address its peers dial it on;
//! - the acceptor requires a client certificate whose chain leads to the
//!   CA. It does not check a name (a dialer's source address says
//!   nothing): which node the dialer is comes from the hello that follows
//!   inside TLS, checked as without TLS, and with a cluster secret proved
//!   as well.
//!
//! A connection that fails TLS (a chain from another CA, a certificate
//! for another address, a peer without TLS) is refused, counted
//! ([`TransportStats::tls_refused`](super::TransportStats::tls_refused),
//! [`TransportStats::tls_rejected_by_peer`](super::TransportStats::tls_rejected_by_peer))
//! and logged as a warning with rustls's reason.
//!
//! # Streams
//!
//! [`Stream`] is a plain TCP stream or a TLS one over it. The handshake
//! reads and writes either through it; an established connection is split
//! into its halves: a plain one with `TcpStream::into_split` (no lock
//! between the halves, as before TLS existed), a TLS one with
//! `tokio::io::split` (one session shared by the reader and the writer).

use std::fmt;
use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A node's TLS settings, loaded and checked: its certificate chain and
/// key, and the cluster CA its peers' chains must lead to. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    connector: tokio_rustls::TlsConnector,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.write_str("TlsConfig { .. }")
    }
}

/// Why TLS settings cannot be used. The message names the file (or the
/// part: certificate, key, CA) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsConfigError(String);

/// Which of the three PEM inputs a message is about.
#[derive(Clone, Copy)]
enum Part {
    Cert,
    Key,
    Ca,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Cert => "tls_cert_pem",
            Part::Key => "tls_key_pem",
            Part::Ca => "tls_ca_pem",
        }
    }
}

fn certs(
    part: Part,
    pem: &[u8],
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsConfigError(format!(
                "{} {origin}: not PEM certificates: {e}",
                part.name()
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError(format!(
            "{} {origin}: no PEM certificate (\"BEGIN CERTIFICATE\") in it",
            part.name()
        )));
    }
    Ok(certs)
}

fn key(pem: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        TlsConfigError(format!(
            "tls_key_pem {origin}: no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"
        ))
    })
}

fn read(part: Part, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path)
        .map_err(|e| TlsConfigError(format!("{} {}: {e}", part.name(), path.display())))
}

impl TlsConfig {
    /// Reads the node's certificate chain (leaf first), its private key
    /// and the cluster CA from PEM files.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsConfigError> {
        let name = |p: &Path| p.display().to_string();
        let (cert, key, ca) = (cert.as_ref(), key.as_ref(), ca.as_ref());
        Self::build(
            (&read(Part::Cert, cert)?, &name(cert)),
            (&read(Part::Key, key)?, &name(key)),
            (&read(Part::Ca, ca)?, &name(ca)),
        )
    }

    /// The same from PEM text in memory.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<TlsConfig, TlsConfigError> {
        Self::build(
            (cert, "(in memory)"),
            (key, "(in memory)"),
            (ca, "(in memory)"),
        )
    }

    fn build(
        cert: (&[u8], &str),
        key_pem: (&[u8], &str),
        ca: (&[u8], &str),
    ) -> Result<TlsConfig, TlsConfigError> {
        let chain = certs(Part::Cert, cert.0, cert.1)?;
        let key = key(key_pem.0, key_pem.1)?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(Part::Ca, ca.0, ca.1)? {
            roots.add(c).map_err(|e| {
                TlsConfigError(format!(
                    "tls_ca_pem {}: not a usable CA certificate: {e}",
                    ca.1
                ))
            })?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = [&rustls::version::TLS13];
        let bad = |e: rustls::Error| {
            TlsConfigError(format!(
                "tls_cert_pem {} and tls_key_pem {}: {e}",
                cert.1, key_pem.1
            ))
        };
        let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsConfigError(format!("tls_ca_pem {}: {e}", ca.1)))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(bad)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(bad)?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(bad)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(bad)?;
        Ok(TlsConfig {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// The dialer's TLS handshake over a connected stream: the acceptor's
    /// certificate must lead to the CA and name `ip`.
    pub(crate) async fn connect(&self, ip: IpAddr, tcp: TcpStream) -> io::Result<Stream> {
        let name = ServerName::IpAddress(ip.into());
        let tls = self.connector.connect(name, tcp).await?;
        Ok(Stream::Tls(Box::new(tls.into())))
    }

    /// The acceptor's TLS handshake: the dialer must present a certificate
    /// leading to the CA.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<Stream> {
        let tls = self.acceptor.accept(tcp).await?;
        Ok(Stream::Tls(Box::new(tls.into())))
    }
}

/// A TLS failure, as an i/o error says it: `Some((reason, by_peer))` when
/// the error comes from TLS, `by_peer` when the peer refused us (it sent an
/// alert) rather than this node refusing the peer.
pub(crate) fn tls_failure(err: &io::Error) -> Option<(String, bool)> {
    let inner = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    let by_peer = matches!(inner, rustls::Error::AlertReceived(_));
    let reason = match inner {
        rustls::Error::InvalidMessage(_) => format!("{inner} (is the peer without TLS?)"),
        _ => inner.to_string(),
    };
    Some((reason, by_peer))
}

/// Does a handshake head that is neither a hello nor a refusal start like
/// TLS (a handshake or alert record of TLS 1.x)? Then the peer speaks TLS
/// and this node does not.
pub(crate) fn looks_like_tls(head: &[u8]) -> bool {
    matches!(head, [0x15 | 0x16, 0x03, ..])
}

/// A connection's byte stream: plain TCP, or TLS over TCP.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/certs")
            .join(name)
    }

    fn load(cert: &str, key: &str, ca: &str) -> Result<TlsConfig, TlsConfigError> {
        TlsConfig::from_pem_files(cert_file(cert), cert_file(key), cert_file(ca))
    }

    #[test]
    fn a_node_certificate_its_key_and_the_ca_load() {
        load("node1.crt", "node1.key", "ca.crt").expect("the test certificates load");
    }

    #[test]
    fn a_missing_file_bad_pem_or_a_key_of_another_certificate_is_refused_with_its_name() {
        let err = load("node1.crt", "node1.key", "nope.crt")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls_ca_pem") && err.contains("nope.crt"),
            "{err}"
        );
        // A key where the certificate goes, a certificate where the key goes.
        let err = load("node1.key", "node1.key", "ca.crt")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls_cert_pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = load("node1.crt", "node1.crt", "ca.crt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_key_pem"), "{err}");
        let err = load("node1.crt", "node2.key", "ca.crt")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls_cert_pem") && err.contains("tls_key_pem"),
            "{err}"
        );
        assert!(err.to_lowercase().contains("key"), "{err}");
        let err = TlsConfig::from_pem(b"garbage", b"", b"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_cert_pem"), "{err}");
    }

    #[test]
    fn tls_records_are_told_from_hellos() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x00]));
        assert!(looks_like_tls(&[0x15, 0x03, 0x03]));
        assert!(!looks_like_tls(b"MUXR"));
        assert!(!looks_like_tls(&[0x16]));
    }
}
