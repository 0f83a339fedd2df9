//! SIP over TCP and TLS (RFC 3261 §18): the listeners and one task per connection.
//!
//! Each connection task frames what it reads ([`crate::sip::stream::StreamFramer`]), answers
//! keep-alive pings, and hands whole messages to the driver's loop, which feeds the
//! controller; what the controller sends to a peer that is a connection goes back through
//! that connection's task. Bounds, so a peer cannot hold what it has no right to:
//! connections per source IP (`[sip] max_connections_per_source`, refused at accept) and in
//! all ([`MAX_CONNECTIONS`]); [`MESSAGE_DEADLINE`] (or `connection_idle` if shorter) for a
//! message begun to be complete (a sender trickling bytes); `[sip] connection_idle` of silence; [`TLS_HANDSHAKE`] for the
//! handshake; the framer's header and body limits; a bounded queue of messages to send (a
//! peer that does not read is disconnected, not buffered for).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::sip::stream::{PONG, StreamFramer, StreamItem, refusal};
use crate::sip::transport::Transport;

/// Connections held open at once, every source together.
pub const MAX_CONNECTIONS: usize = 50_000;
/// How long a message may take to arrive once its first byte has (RFC 3261 §18.3 leaves it to
/// the implementation; Timer F's 32 s is the longest any transaction waits anyway).
pub const MESSAGE_DEADLINE: Duration = Duration::from_secs(32);
/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
/// Messages queued for one connection before it counts as not reading.
const SEND_QUEUE: usize = 256;
/// What connection tasks tell the driver's loop.
const EVENTS: usize = 4096;

/// Messages waiting to be written to one connection: a plain queue and a wake-up (no
/// allocation until something is queued, so an idle connection costs nothing here).
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Mutex<VecDeque<Bytes>>,
    ready: Notify,
}

impl Outbox {
    /// Queues `bytes` for the connection; `false` when [`SEND_QUEUE`] messages already wait
    /// (the peer is not reading: the message is dropped, like a lost datagram).
    pub fn send(&self, bytes: Bytes) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= SEND_QUEUE {
            return false;
        }
        queue.push_back(bytes);
        drop(queue);
        self.ready.notify_one();
        true
    }

    fn take(&self) -> Option<Bytes> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 0 {
            *queue = VecDeque::new();
        }
        bytes
    }
}

/// What a connection task tells the driver.
#[derive(Debug)]
pub enum StreamEvent {
    /// A connection is up; messages for `peer` go to `writer`.
    Opened {
        /// The remote address (the flow's name).
        peer: SocketAddr,
        /// Its send queue.
        writer: Arc<Outbox>,
    },
    /// A whole message from `peer`.
    Message {
        /// The remote address.
        peer: SocketAddr,
        /// TCP or TLS.
        transport: Transport,
        /// The message.
        bytes: Bytes,
    },
    /// The connection with `peer` is gone.
    Closed {
        /// The remote address.
        peer: SocketAddr,
    },
}

/// Limits every connection task applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Silence before a connection is closed.
    pub idle: Duration,
    /// Connections per source IP.
    pub per_source: u32,
}

/// The listeners' shared state: connection counts, and the channel to the driver's loop.
#[derive(Clone)]
struct Shared {
    counts: Arc<Mutex<Counts>>,
    events: mpsc::Sender<StreamEvent>,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, u32>,
}

impl Shared {
    /// Takes a connection slot for `ip`, or says why not.
    fn admit(&self, ip: IpAddr) -> Result<(), &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= MAX_CONNECTIONS {
            return Err("connection limit reached");
        }
        let mine = counts.per_ip.entry(ip).or_default();
        if *mine >= self.limits.per_source {
            return Err("per-source connection limit reached");
        }
        *mine += 1;
        counts.total += 1;
        Ok(())
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

/// Opens connections of holdfast's own (RFC 3261 §18.1.1: a request too large for UDP).
#[derive(Clone)]
pub struct Connector(Shared);

/// How long connecting to a peer may take before its messages are given up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Connector {
    /// Connects to `peer` over TCP in the background; the returned queue takes messages at
    /// once, sent when the connection is up. The connection then lives as one the peer had
    /// opened ([`StreamEvent::Opened`] with the same queue); a failure to connect ends as
    /// [`StreamEvent::Closed`] (what was queued is lost, as datagrams would be).
    pub fn connect(&self, peer: SocketAddr) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox::default());
        let shared = self.0.clone();
        let queued = Arc::clone(&outbox);
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    run(stream, peer, Transport::Tcp, &shared, queued).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "SIP connection failed"),
                Err(_) => tracing::debug!(%peer, "SIP connection timed out"),
            }
            let _ = shared.events.send(StreamEvent::Closed { peer }).await;
        });
        outbox
    }
}

/// Binds the TCP listener at `tcp` and, when given, the TLS one; connections report on the
/// returned channel until `stop` turns true.
pub async fn listen(
    tcp: SocketAddr,
    tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    limits: Limits,
    stop: watch::Receiver<bool>,
) -> Result<
    (mpsc::Receiver<StreamEvent>, Option<SocketAddr>, Connector),
    (SocketAddr, std::io::Error),
> {
    let (events, inbound) = mpsc::channel(EVENTS);
    let shared = Shared {
        counts: Arc::default(),
        events,
        limits,
        stop,
    };
    let listener = TcpListener::bind(tcp).await.map_err(|e| (tcp, e))?;
    tracing::info!(listen = %tcp, "holdfast listening (SIP/TCP)");
    tokio::spawn(accept(listener, None, shared.clone()));
    let mut tls_addr = None;
    if let Some((addr, config)) = tls {
        let listener = TcpListener::bind(addr).await.map_err(|e| (addr, e))?;
        let bound = listener.local_addr().map_err(|e| (addr, e))?;
        tracing::info!(listen = %bound, "holdfast listening (SIP/TLS)");
        tls_addr = Some(bound);
        tokio::spawn(accept(
            listener,
            Some(TlsAcceptor::from(config)),
            shared.clone(),
        ));
    }
    Ok((inbound, tls_addr, Connector(shared)))
}

async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Shared) {
    let mut stop = shared.stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of descriptors, mostly: let the others finish.
                tracing::warn!(%error, "SIP connection not accepted");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(why) = shared.admit(peer.ip()) {
            // Dropped, which closes it. Debug level: a flood must not flood the log too.
            tracing::debug!(%peer, why, "SIP connection refused");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            serve(stream, peer, tls, &shared).await;
            shared.release(peer.ip());
            let _ = shared.events.send(StreamEvent::Closed { peer }).await;
        });
    }
}

/// One connection, TLS or not, until it ends.
async fn serve(stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, shared: &Shared) {
    match tls {
        None => run(stream, peer, Transport::Tcp, shared, Arc::default()).await,
        Some(acceptor) => {
            // Boxed: a TLS connection's state is large, and the TCP tasks need not carry room
            // for it.
            let handshake = Box::pin(tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)));
            match handshake.await {
                Ok(Ok(stream)) => {
                    Box::pin(run(stream, peer, Transport::Tls, shared, Arc::default())).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn run<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    shared: &Shared,
    outbox: Arc<Outbox>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let out = Arc::clone(&outbox);
    if shared
        .events
        .send(StreamEvent::Opened { peer, writer: out })
        .await
        .is_err()
    {
        return;
    }
    let mut stop = shared.stop.clone();
    let mut framer = StreamFramer::default();
    let mut quiet_until = tokio::time::Instant::now() + shared.limits.idle;
    let mut message_due: Option<tokio::time::Instant> = None;
    loop {
        let deadline = message_due.map_or(quiet_until, |due| due.min(quiet_until));
        tokio::select! {
            read = read_into(&mut reader, &mut framer) => {
                if !matches!(read, Ok(n) if n > 0) {
                    return;
                }
                quiet_until = tokio::time::Instant::now() + shared.limits.idle;
                while let Some(item) = framer.next_item() {
                    match item {
                        Ok(StreamItem::Message(bytes)) => {
                            let event = StreamEvent::Message { peer, transport, bytes };
                            if shared.events.send(event).await.is_err() {
                                return;
                            }
                        }
                        Ok(StreamItem::Ping) => {
                            if writer.write_all(PONG).await.is_err() {
                                return;
                            }
                        }
                        Err((error, header)) => {
                            tracing::debug!(%peer, %error, "SIP stream unreadable: closing");
                            if let Some(reply) = refusal(error, &header) {
                                let _ = writer.write_all(&reply).await;
                            }
                            let _ = writer.shutdown().await;
                            return;
                        }
                    }
                }
                message_due = match (framer.in_message(), message_due) {
                    (false, _) => None,
                    (true, None) => Some(
                        tokio::time::Instant::now() + MESSAGE_DEADLINE.min(shared.limits.idle),
                    ),
                    (true, due) => due,
                };
            }
            _ = outbox.ready.notified() => {
                while let Some(bytes) = outbox.take() {
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::debug!(%peer, "SIP connection idle or stalled: closing");
                let _ = writer.shutdown().await;
                return;
            }
            _ = stopped(&mut stop) => {
                // Whatever the controller queued last (the BYEs of a graceful stop) goes first.
                while let Some(bytes) = outbox.take() {
                    let _ = writer.write_all(&bytes).await;
                }
                let _ = writer.shutdown().await;
                return;
            }
        }
    }
}

/// Reads what the connection has into `framer`; the bytes read (0: the peer closed). The
/// read buffer lives on the stack for the one poll that fills it, so a connection waiting
/// for data holds no buffer at all (thousands of idle phones cost what their state costs).
async fn read_into<R: AsyncRead + Unpin>(
    reader: &mut R,
    framer: &mut StreamFramer,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut local = [0u8; 8192];
        let mut buf = ReadBuf::new(&mut local);
        match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                framer.push(buf.filled());
                Poll::Ready(Ok(buf.filled().len()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Resolves once the stop signal is up (its guard dropped at once: not held across awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
