//! An async RouterOS API client: one task owns each connection.
//!
//! Every command is tagged (`t1`, `t2`, ...) and replies are routed by tag, so commands run
//! concurrently on one session and a late reply can never be taken for another command's. A
//! command ends on its own `!done`: `!empty` only marks it empty, `!trap`s are collected until
//! `!done`, and `!fatal` fails every command in flight and closes the session. When a deadline
//! passes, the caller gets [`Error::Timeout`] at once and the task sends `/cancel`; if the
//! cancelled command's `!done` does not follow within the grace period the connection is dropped
//! (its owner reconnects), so a stuck reply can never desynchronise the session.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_rustls::TlsConnector;

use super::codec::{Decoder, Limits, ProtocolError};
use super::sentence::{Kind, Sentence, decode_text};
use super::tls::{TlsMode, client_config, server_name};

/// A `!trap`: a command-level error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// `=category=`, when sent.
    pub category: Option<u8>,
    /// `=message=`.
    pub message: String,
}

/// The stage an operation timed out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect.
    Connect,
    /// TLS handshake.
    Tls,
    /// Login.
    Login,
    /// A command.
    Command,
}

/// What went wrong, typed so a scheduler can decide what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// TCP connect failed (refused, unreachable).
    #[error("connect failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (bad certificate, pin mismatch, no common suite).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The router refused the credentials.
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    /// The router ended the session with `!fatal`.
    #[error("session ended by the router: {0}")]
    Fatal(String),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// The command failed (one or more `!trap`s); the device itself is fine.
    #[error("command failed: {}", .0.first().map_or("", |t| t.message.as_str()))]
    Trap(Vec<Trap>),
    /// A deadline passed.
    #[error("timed out during {0:?}")]
    Timeout(Phase),
    /// The connection was lost.
    #[error("connection closed: {0}")]
    Closed(String),
    /// A streaming command produced rows faster than they were consumed and was cancelled.
    #[error("stream cancelled: consumer too slow")]
    Backpressure,
}

/// How a failure should be treated by a poll scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The device cannot be reached: back off.
    Unreachable,
    /// Wrong credentials: hold back and report, do not hammer.
    Auth,
    /// The session broke: reconnect.
    Session,
    /// A command failed on a healthy device: not a device failure.
    Command,
}

impl Error {
    /// The scheduler's view of this error.
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Connect(_) | Self::Tls(_) | Self::Timeout(Phase::Connect | Phase::Tls | Phase::Login) => {
                FailureClass::Unreachable
            }
            Self::AuthFailed(_) => FailureClass::Auth,
            Self::Trap(_) | Self::Backpressure => FailureClass::Command,
            Self::Fatal(_) | Self::Protocol(_) | Self::Closed(_) | Self::Timeout(Phase::Command) => {
                FailureClass::Session
            }
        }
    }
}

/// A finished command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The `!re` rows (empty for streams, whose rows went through the channel).
    pub rows: Vec<Sentence>,
    /// `=ret=` of `!done`, if any.
    pub ret: Option<String>,
    /// Whether the router answered `!empty`.
    pub empty: bool,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// TCP connect deadline.
    pub connect_timeout: Duration,
    /// TLS handshake deadline.
    pub tls_timeout: Duration,
    /// Login deadline (both steps of the legacy flow together).
    pub login_timeout: Duration,
    /// Default command deadline.
    pub command_timeout: Duration,
    /// How long a cancelled command may take to send its `!done` before the connection is dropped.
    pub cancel_grace: Duration,
    /// Framing limits.
    pub limits: Limits,
    /// Most rows one non-streaming command may return.
    pub max_rows: usize,
    /// Rows buffered for a streaming command before it is cancelled for backpressure.
    pub stream_capacity: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            tls_timeout: Duration::from_secs(5),
            login_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            cancel_grace: Duration::from_secs(2),
            limits: Limits::default(),
            max_rows: 100_000,
            stream_capacity: 256,
        }
    }
}

/// Plain API or api-ssl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Port 8728, cleartext (explicit opt-in; fine inside the tunnel or on a trusted LAN).
    Plain,
    /// Port 8729, TLS.
    Tls(TlsMode),
}

/// User name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// RouterOS user.
    pub username: String,
    /// RouterOS password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Which login flow the router accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFlow {
    /// RouterOS ≥ 6.43: name and password in one step.
    Plain,
    /// Before 6.43: MD5 challenge-response.
    Challenge,
}

enum Sink {
    Collect(oneshot::Sender<Result<Reply, Error>>),
    Stream {
        rows: mpsc::Sender<Sentence>,
        end: oneshot::Sender<Result<Reply, Error>>,
    },
}

// Queued as `Box<Op>`: an idle session's queue reserves a whole block of slots up front, and
// pointer-sized slots keep that block small across thousands of sessions.
enum Op {
    Run {
        sentence: Sentence,
        deadline: Option<Instant>,
        sink: Sink,
    },
    Cancel {
        tag: String,
    },
}

/// A live session. Cheap to clone; the connection closes when every clone is dropped.
#[derive(Clone)]
pub struct Client {
    ops: mpsc::Sender<Box<Op>>,
    tags: Arc<AtomicU32>,
    config: Arc<ClientConfig>,
    flow: LoginFlow,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("flow", &self.flow)
            .field("closed", &self.ops.is_closed())
            .finish()
    }
}

/// Computes the legacy login response: `00` + hex(MD5(0x00 ‖ password ‖ challenge)).
pub fn challenge_response(password: &str, challenge_hex: &str) -> Result<String, Error> {
    let challenge =
        hex::decode(challenge_hex).map_err(|_| Error::AuthFailed(format!("bad login challenge {challenge_hex:?}")))?;
    let mut md5 = Md5::new();
    md5.update([0u8]);
    md5.update(password.as_bytes());
    md5.update(&challenge);
    Ok(format!("00{}", hex::encode(md5.finalize())))
}

impl Client {
    /// Connects over TCP (and TLS), logs in, and starts the connection task.
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        transport: &Transport,
        credentials: &Credentials,
        config: ClientConfig,
    ) -> Result<Self, Error> {
        let tcp = timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout(Phase::Connect))?
            .map_err(|e| Error::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match transport {
            Transport::Plain => Self::over(tcp, credentials, config).await,
            Transport::Tls(TlsMode::Anonymous) => {
                #[cfg(feature = "openssl")]
                {
                    let tls = timeout(config.tls_timeout, super::tls::anonymous::connect(tcp))
                        .await
                        .map_err(|_| Error::Timeout(Phase::Tls))?
                        .map_err(Error::Tls)?;
                    Self::over(tls, credentials, config).await
                }
                #[cfg(not(feature = "openssl"))]
                {
                    drop(tcp);
                    Err(Error::Tls("anonymous-DH needs tod-agent's `openssl` feature".into()))
                }
            }
            Transport::Tls(mode) => {
                let connector = TlsConnector::from(client_config(mode).map_err(Error::Tls)?);
                let name = server_name(host).map_err(Error::Tls)?;
                let tls = timeout(config.tls_timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| Error::Timeout(Phase::Tls))?
                    .map_err(|e| Error::Tls(e.to_string()))?;
                Self::over(tls, credentials, config).await
            }
        }
    }

    /// Logs in over an established byte stream (TCP, TLS, or an in-memory duplex) and starts the
    /// connection task on it.
    pub async fn over<S>(stream: S, credentials: &Credentials, config: ClientConfig) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (ops, rx) = mpsc::channel(16);
        let config = Arc::new(config);
        tokio::spawn(Connection::new(stream, rx, config.clone()).run());
        let mut client = Self {
            ops,
            tags: Arc::new(AtomicU32::new(0)),
            config,
            flow: LoginFlow::Plain,
        };
        client.flow = timeout(client.config.login_timeout, client.login(credentials))
            .await
            .map_err(|_| Error::Timeout(Phase::Login))??;
        Ok(client)
    }

    async fn login(&self, c: &Credentials) -> Result<LoginFlow, Error> {
        let no_deadline = |e: Error| match e {
            Error::Trap(traps) => Error::AuthFailed(traps.first().map(|t| t.message.clone()).unwrap_or_default()),
            Error::Timeout(_) => Error::Timeout(Phase::Login),
            other => other,
        };
        // The portable flow: modern first; a pre-6.43 router ignores the password and answers
        // with a challenge in `=ret=`.
        let modern = Sentence::command("/login")
            .attr("name", &c.username)
            .attr("password", &c.password);
        let reply = self.run(modern, None).await.map_err(no_deadline)?;
        let Some(challenge) = reply.ret else {
            return Ok(LoginFlow::Plain);
        };
        let legacy = Sentence::command("/login")
            .attr("name", &c.username)
            .attr("response", challenge_response(&c.password, &challenge)?);
        self.run(legacy, None).await.map_err(no_deadline)?;
        Ok(LoginFlow::Challenge)
    }

    /// The login flow the router accepted.
    pub fn login_flow(&self) -> LoginFlow {
        self.flow
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.ops.is_closed()
    }

    fn next_tag(&self) -> String {
        format!("t{}", self.tags.fetch_add(1, Ordering::Relaxed).wrapping_add(1))
    }

    async fn run(&self, mut sentence: Sentence, deadline: Option<Instant>) -> Result<Reply, Error> {
        sentence.tag = Some(self.next_tag());
        let (tx, rx) = oneshot::channel();
        let op = Op::Run {
            sentence,
            deadline,
            sink: Sink::Collect(tx),
        };
        self.ops
            .send(Box::new(op))
            .await
            .map_err(|_| Error::Closed("session is closed".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(Error::Closed("session is closed".into())))
    }

    /// Runs a command with the default deadline and returns its rows. A `!trap` is
    /// [`Error::Trap`]; the session stays usable.
    pub async fn command(&self, sentence: Sentence) -> Result<Reply, Error> {
        self.command_within(sentence, self.config.command_timeout).await
    }

    /// Runs a command with an explicit deadline.
    pub async fn command_within(&self, sentence: Sentence, limit: Duration) -> Result<Reply, Error> {
        self.run(sentence, Some(Instant::now() + limit)).await
    }

    /// `print` of a menu with an optional property list and query words.
    pub async fn print(&self, menu: &str, props: &[&str], queries: &[String]) -> Result<Vec<Sentence>, Error> {
        let mut s = Sentence::command(format!("{}/print", menu.trim_end_matches('/')));
        if !props.is_empty() {
            s = s.proplist(props);
        }
        for q in queries {
            s = s.query(q.clone());
        }
        Ok(self.command(s).await?.rows)
    }

    /// Starts a streaming command (`listen`, `monitor` without `=once=`, `print =interval=`).
    /// Rows arrive through the returned stream; dropping it cancels the command.
    pub async fn stream(&self, mut sentence: Sentence) -> Result<RowStream, Error> {
        let tag = self.next_tag();
        sentence.tag = Some(tag.clone());
        let (rows_tx, rows) = mpsc::channel(self.config.stream_capacity.max(1));
        let (end_tx, end) = oneshot::channel();
        let op = Op::Run {
            sentence,
            deadline: None,
            sink: Sink::Stream {
                rows: rows_tx,
                end: end_tx,
            },
        };
        self.ops
            .send(Box::new(op))
            .await
            .map_err(|_| Error::Closed("session is closed".into()))?;
        Ok(RowStream {
            rows,
            end: Some(end),
            cancel: Some((self.ops.clone(), tag)),
        })
    }

    /// Sends `/quit` and waits for the router to end the session.
    pub async fn quit(self) {
        let _ = self
            .command_within(Sentence::command("/quit"), Duration::from_secs(2))
            .await;
    }
}

/// Rows of a streaming command.
#[derive(Debug)]
pub struct RowStream {
    rows: mpsc::Receiver<Sentence>,
    end: Option<oneshot::Receiver<Result<Reply, Error>>>,
    cancel: Option<(mpsc::Sender<Box<Op>>, String)>,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Run { sentence, .. } => write!(f, "Run({})", sentence.kind.as_word()),
            Self::Cancel { tag } => write!(f, "Cancel({tag})"),
        }
    }
}

impl RowStream {
    /// The next row; `None` once the command has ended.
    pub async fn next(&mut self) -> Option<Sentence> {
        self.rows.recv().await
    }

    /// Cancels the command and waits for it to end.
    pub async fn cancel(mut self) -> Result<Reply, Error> {
        if let Some((ops, tag)) = self.cancel.take() {
            let _ = ops.send(Box::new(Op::Cancel { tag })).await;
        }
        while self.rows.recv().await.is_some() {}
        match self.end.take() {
            Some(end) => end
                .await
                .unwrap_or_else(|_| Err(Error::Closed("session is closed".into()))),
            None => Ok(Reply::default()),
        }
    }
}

impl Drop for RowStream {
    fn drop(&mut self) {
        if let Some((ops, tag)) = self.cancel.take() {
            let _ = ops.try_send(Box::new(Op::Cancel { tag }));
        }
    }
}

struct InFlight {
    sink: Option<Sink>,
    rows: Vec<Sentence>,
    traps: Vec<Trap>,
    empty: bool,
    deadline: Option<Instant>,
    cancelled_at: Option<Instant>,
}

struct Connection<S> {
    stream: S,
    ops: mpsc::Receiver<Box<Op>>,
    config: Arc<ClientConfig>,
    decoder: Decoder,
    inflight: HashMap<String, InFlight>,
    cancels: u32,
}

/// Read buffer size of an idle session.
const IDLE_BUFFER: usize = 2048;

fn io_closed(e: &io::Error) -> Error {
    Error::Closed(e.to_string())
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Connection<S> {
    fn new(stream: S, ops: mpsc::Receiver<Box<Op>>, config: Arc<ClientConfig>) -> Self {
        let decoder = Decoder::new(config.limits);
        Self {
            stream,
            ops,
            config,
            decoder,
            inflight: HashMap::new(),
            cancels: 0,
        }
    }

    async fn run(mut self) {
        // Small to start: an agent holds thousands of idle sessions. A big reply grows it, and it
        // is replaced once drained (see below).
        let mut buf = BytesMut::with_capacity(IDLE_BUFFER);
        let outcome: Error = loop {
            let next_deadline = self.next_deadline();
            tokio::select! {
                read = self.stream.read_buf(&mut buf) => match read {
                    Ok(0) => break Error::Closed("the router closed the connection".into()),
                    Err(e) => break io_closed(&e),
                    Ok(_) => {
                        if let Err(e) = self.drain(&mut buf).await {
                            break e;
                        }
                        // The rows just decoded share the buffer's allocation; once they are
                        // gone, a drained buffer would still pin all of it. Start afresh.
                        if buf.is_empty() {
                            buf = BytesMut::with_capacity(IDLE_BUFFER);
                        }
                    }
                },
                op = self.ops.recv() => match op {
                    None => {
                        // Every handle is gone: close quietly.
                        let _ = self.stream.shutdown().await;
                        return;
                    }
                    Some(op) => {
                        if let Err(e) = self.submit(op).await {
                            break e;
                        }
                    }
                },
                _ = sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                    if let Err(e) = self.expire().await {
                        break e;
                    }
                }
            }
        };
        self.fail_all(&outcome);
        let _ = self.stream.shutdown().await;
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.inflight
            .values()
            .filter_map(|f| match f.cancelled_at {
                Some(c) => Some(c + self.config.cancel_grace),
                None => f.deadline,
            })
            .min()
    }

    async fn write(&mut self, s: &Sentence) -> Result<(), Error> {
        let mut out = Vec::with_capacity(64);
        s.encode(&mut out);
        self.stream.write_all(&out).await.map_err(|e| io_closed(&e))?;
        self.stream.flush().await.map_err(|e| io_closed(&e))
    }

    async fn submit(&mut self, op: Box<Op>) -> Result<(), Error> {
        match *op {
            Op::Run {
                sentence,
                deadline,
                sink,
            } => {
                let tag = sentence.tag.clone().expect("the client tags every command");
                self.write(&sentence).await?;
                let entry = InFlight {
                    sink: Some(sink),
                    rows: Vec::new(),
                    traps: Vec::new(),
                    empty: false,
                    deadline,
                    cancelled_at: None,
                };
                self.inflight.insert(tag, entry);
                Ok(())
            }
            Op::Cancel { tag } => self.cancel(&tag).await,
        }
    }

    async fn cancel(&mut self, tag: &str) -> Result<(), Error> {
        let Some(f) = self.inflight.get_mut(tag) else {
            return Ok(());
        };
        if f.cancelled_at.is_some() {
            return Ok(());
        }
        f.cancelled_at = Some(Instant::now());
        self.cancels = self.cancels.wrapping_add(1);
        let own = format!("c{}", self.cancels);
        let cancel = Sentence::command("/cancel").attr("tag", tag).tagged(own.clone());
        self.write(&cancel).await?;
        // The `/cancel` gets its own `!done`; track it so it is consumed, with no one waiting.
        let entry = InFlight {
            sink: None,
            rows: Vec::new(),
            traps: Vec::new(),
            empty: false,
            deadline: Some(Instant::now() + self.config.cancel_grace),
            cancelled_at: None,
        };
        self.inflight.insert(own, entry);
        Ok(())
    }

    async fn expire(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        let mut to_cancel = Vec::new();
        for (tag, f) in &mut self.inflight {
            match f.cancelled_at {
                Some(c) if c + self.config.cancel_grace <= now => {
                    return Err(Error::Timeout(Phase::Command));
                }
                Some(_) => {}
                None if f.deadline.is_some_and(|d| d <= now) => {
                    if let Some(sink) = f.sink.take() {
                        send_end(sink, Err(Error::Timeout(Phase::Command)));
                    }
                    if tag.starts_with('c') {
                        // A `/cancel` that got no answer: the session is not trustworthy.
                        return Err(Error::Timeout(Phase::Command));
                    }
                    to_cancel.push(tag.clone());
                }
                None => {}
            }
        }
        for tag in to_cancel {
            self.cancel(&tag).await?;
        }
        Ok(())
    }

    async fn drain(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        while let Some(words) = self.decoder.decode(buf).map_err(Error::Protocol)? {
            let s = Sentence::from_words(&words).map_err(Error::Protocol)?;
            self.dispatch(s).await?;
        }
        Ok(())
    }

    async fn dispatch(&mut self, s: Sentence) -> Result<(), Error> {
        if s.kind == Kind::Fatal {
            let reason = s
                .extra
                .first()
                .map(|w| decode_text(w).into_owned())
                .or_else(|| s.get("message").map(|m| m.into_owned()))
                .unwrap_or_default();
            return Err(Error::Fatal(reason));
        }
        let Some(tag) = s.tag.clone() else {
            tracing::debug!(kind = s.kind.as_word(), "untagged reply dropped");
            return Ok(());
        };
        let Some(f) = self.inflight.get_mut(&tag) else {
            tracing::debug!(%tag, "reply for an unknown tag dropped");
            return Ok(());
        };
        match s.kind {
            Kind::Re => match &f.sink {
                Some(Sink::Stream { rows, .. }) => match rows.try_send(s) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => self.cancel(&tag).await?,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if let Some(sink) = f.sink.take() {
                            send_end(sink, Err(Error::Backpressure));
                        }
                        self.cancel(&tag).await?;
                    }
                },
                Some(Sink::Collect(_)) => {
                    if f.rows.len() >= self.config.max_rows {
                        let limit = self.config.max_rows;
                        if let Some(sink) = f.sink.take() {
                            send_end(
                                sink,
                                Err(Error::Protocol(ProtocolError::Malformed(format!(
                                    "more than {limit} rows"
                                )))),
                            );
                        }
                        self.cancel(&tag).await?;
                    } else {
                        f.rows.push(s);
                    }
                }
                None => {}
            },
            Kind::Trap => {
                let category = s.get("category").and_then(|c| c.parse().ok());
                let message = s.get("message").map(|m| m.into_owned()).unwrap_or_default();
                f.traps.push(Trap { category, message });
            }
            Kind::Empty => f.empty = true,
            Kind::Done => {
                let f = self.inflight.remove(&tag).expect("present");
                if let Some(sink) = f.sink {
                    let result = if f.traps.is_empty() {
                        Ok(Reply {
                            rows: f.rows,
                            ret: s.get("ret").map(|r| r.into_owned()),
                            empty: f.empty,
                        })
                    } else {
                        Err(Error::Trap(f.traps))
                    };
                    send_end(sink, result);
                }
            }
            Kind::Unknown(ref word) => tracing::debug!(%word, %tag, "unknown reply word kept out of results"),
            Kind::Command(_) | Kind::Fatal => {
                return Err(Error::Protocol(ProtocolError::Malformed(
                    "the router sent a command word".into(),
                )));
            }
        }
        Ok(())
    }

    fn fail_all(&mut self, e: &Error) {
        for (_, f) in self.inflight.drain() {
            if let Some(sink) = f.sink {
                send_end(sink, Err(e.clone()));
            }
        }
        // Commands still queued behind the failure get the same answer.
        self.ops.close();
        while let Ok(op) = self.ops.try_recv() {
            if let Op::Run { sink, .. } = *op {
                send_end(sink, Err(e.clone()));
            }
        }
    }
}

fn send_end(sink: Sink, result: Result<Reply, Error>) {
    match sink {
        Sink::Collect(tx) => {
            let _ = tx.send(result);
        }
        Sink::Stream { end, .. } => {
            let _ = end.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_challenge_vectors_from_the_reference() {
        assert_eq!(
            challenge_response("secret", "ebddd18e5b1cc4e8c5a3b9a6b0f3a7f2").unwrap(),
            "00965b6ff8ddfc2a5b8ca3c931a15619fd"
        );
        assert_eq!(
            challenge_response("", "ebddd18e5b1cc4e8c5a3b9a6b0f3a7f2").unwrap(),
            "0029281eb453bf31f2fff63f8f91c709a0"
        );
        assert!(matches!(challenge_response("x", "zz"), Err(Error::AuthFailed(_))));
    }

    #[test]
    fn failure_classes_drive_the_scheduler() {
        assert_eq!(Error::Connect("refused".into()).class(), FailureClass::Unreachable);
        assert_eq!(Error::AuthFailed("invalid".into()).class(), FailureClass::Auth);
        assert_eq!(Error::Trap(vec![]).class(), FailureClass::Command);
        assert_eq!(Error::Fatal("x".into()).class(), FailureClass::Session);
        assert_eq!(Error::Timeout(Phase::Login).class(), FailureClass::Unreachable);
        assert_eq!(Error::Timeout(Phase::Command).class(), FailureClass::Session);
    }
}
