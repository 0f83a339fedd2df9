//! SIP over TCP and TLS from a test: a blocking connection that sends text and reads whole
//! messages (framed by Content-Length), over plain TCP or rustls trusting holdfast's own
//! certificate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A client connection, plain or TLS.
pub enum Conn {
    /// TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// A rustls client configuration trusting the certificate in `cert` (holdfast's own, self-signed).
pub fn trusting(cert: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("read the certificate") {
        roots
            .add(c.expect("a PEM certificate"))
            .expect("a usable anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Conn {
    /// A TCP connection to `to` from `from_ip` (a loopback address).
    pub fn tcp_from(from_ip: &str, to: SocketAddr) -> std::io::Result<Self> {
        let socket = socket2_bind(from_ip, to)?;
        Ok(Self::Tcp(socket))
    }

    /// A TCP connection to `to`.
    pub fn tcp(to: SocketAddr) -> Self {
        Self::Tcp(TcpStream::connect(to).expect("connect over TCP"))
    }

    /// A TLS connection to `to` from `from_ip`, handshake done.
    pub fn tls_from(
        from_ip: &str,
        to: SocketAddr,
        config: &Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Self> {
        let tcp = socket2_bind(from_ip, to)?;
        let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
        let client = rustls::ClientConnection::new(Arc::clone(config), name)
            .map_err(std::io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(client, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Self::Tls(Box::new(stream)))
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Self::Tcp(s) => s,
            Self::Tls(s) => s.as_mut(),
        }
    }

    fn tcp_ref(&self) -> &TcpStream {
        match self {
            Self::Tcp(s) => s,
            Self::Tls(s) => &s.sock,
        }
    }

    /// Sends `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stream = self.stream();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Reads until `wait` passes or the peer closes: everything received, and whether the
    /// peer closed.
    pub fn read_for(&mut self, wait: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return (got, false);
            };
            let _ = self
                .tcp_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.stream().read(&mut buf) {
                Ok(0) => return (got, true),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return (got, false);
                }
                Err(_) => return (got, true),
            }
        }
    }

    /// Reads until `n` bytes have arrived, the peer closes or `wait` passes: what arrived.
    pub fn read_n(&mut self, n: usize, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        while got.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let _ = self
                .tcp_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.stream().read(&mut buf[..n - got.len()]) {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        got
    }

    /// Reads until a whole final response arrives (or `wait` passes): its text.
    pub fn final_response(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        loop {
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(message) = whole_messages(&text)
                .into_iter()
                .find(|m| super::status_code(m.as_bytes()).is_some_and(|c| c >= 200))
            {
                return Some(message);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let (more, closed) = self.read_for(left.min(Duration::from_millis(200)));
            got.extend_from_slice(&more);
            if closed && more.is_empty() {
                let text = String::from_utf8_lossy(&got).to_string();
                return whole_messages(&text)
                    .into_iter()
                    .find(|m| super::status_code(m.as_bytes()).is_some_and(|c| c >= 200));
            }
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A TCP connection to `to` from `from_ip` (any port): many connections from one test,
/// spread over loopback sources, each source with its own connection limit.
fn socket2_bind(from_ip: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let ip: std::net::IpAddr = from_ip.parse().expect("a loopback address");
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// The whole SIP messages at the start of `text` (framed by Content-Length).
pub fn whole_messages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start_matches("\r\n");
    while let Some(end) = rest.find("\r\n\r\n") {
        let length = super::header(&rest[..end + 2], "Content-Length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let total = end + 4 + length;
        if rest.len() < total {
            break;
        }
        out.push(rest[..total].to_string());
        rest = rest[total..].trim_start_matches("\r\n");
    }
    out
}
