//! One simulated device's API endpoint: login (both flows), tagged commands, `/cancel`, `/quit`,
//! `print` with `.proplist`, queries and `count-only`, `monitor` (once and streaming), `!empty` on
//! RouterOS ≥ 7.18 — and the faults that make it misbehave on purpose.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::menus::{self, Ctx, Row, TrapReply};
use super::state::Stats;
use super::world::mix;
use crate::routeros::client::challenge_response;
use crate::routeros::codec::{Decoder, Limits, encode_sentence};
use crate::routeros::sentence::{Kind, Sentence};

enum Out {
    Bytes(Vec<u8>),
    Close,
}

fn reply_words(kind: &str, attrs: &[(String, String)], tag: Option<&str>) -> Vec<u8> {
    let mut words: Vec<Vec<u8>> = Vec::with_capacity(attrs.len() + 2);
    words.push(kind.as_bytes().to_vec());
    for (k, v) in attrs {
        words.push(format!("={k}={v}").into_bytes());
    }
    if let Some(t) = tag {
        words.push(format!(".tag={t}").into_bytes());
    }
    let mut out = Vec::new();
    encode_sentence(&words, &mut out);
    out
}

fn done(tag: Option<&str>) -> Vec<u8> {
    reply_words("!done", &[], tag)
}

fn trap(t: &TrapReply, tag: Option<&str>) -> Vec<u8> {
    let mut attrs = Vec::new();
    if let Some(c) = t.category {
        attrs.push(("category".to_owned(), c.to_string()));
    }
    attrs.push(("message".to_owned(), t.message.clone()));
    let mut out = reply_words("!trap", &attrs, tag);
    out.extend(done(tag));
    out
}

fn fatal(reason: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_sentence(&["!fatal", reason], &mut out);
    out
}

/// Serves one accepted connection until it ends.
pub(crate) async fn session<S>(shared: Arc<Shared>, index: usize, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let state = &shared.states[index];
    let faults = state.faults();
    Stats::add(&state.stats.sessions_total, 1);
    let open = state.stats.sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let _guard = SessionGuard(shared.clone(), index);
    if faults.max_sessions.is_some_and(|m| open > u64::from(m)) || shared.offline(index) {
        return;
    }
    let (mut reader, writer) = tokio::io::split(stream);
    if faults.silent {
        let mut sink = [0u8; 4096];
        while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    let (out_tx, out_rx) = mpsc::channel::<Out>(256);
    let writer_task = tokio::spawn(write_loop(shared.clone(), index, writer, out_rx));
    let mut s = Session {
        shared: shared.clone(),
        index,
        out: out_tx,
        logged_in: false,
        challenge: None,
        generation: state.runtime().generation,
        streams: HashMap::new(),
    };
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::with_capacity(4096);
    'conn: loop {
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => Stats::add(&state.stats.bytes_in, n as u64),
        }
        loop {
            let words = match decoder.decode(&mut buf) {
                Ok(Some(w)) => w,
                Ok(None) => break,
                Err(_) => break 'conn,
            };
            let Ok(sentence) = Sentence::from_words(&words) else {
                break 'conn;
            };
            if !s.handle(sentence).await {
                break 'conn;
            }
        }
    }
    for (_, stop) in s.streams.drain() {
        let _ = stop.send(());
    }
    let _ = s.out.send(Out::Close).await;
    drop(s);
    let _ = writer_task.await;
}

struct SessionGuard(Arc<Shared>, usize);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.states[self.1]
            .stats
            .sessions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(shared: Arc<Shared>, index: usize, mut w: W, mut rx: mpsc::Receiver<Out>) {
    let stats = &shared.states[index].stats;
    while let Some(out) = rx.recv().await {
        match out {
            Out::Close => break,
            Out::Bytes(bytes) => {
                let split = shared.states[index]
                    .faults
                    .lock()
                    .map(|f| f.split_replies)
                    .unwrap_or(false);
                let ok = if split {
                    let mut ok = true;
                    for b in &bytes {
                        if w.write_all(std::slice::from_ref(b)).await.is_err() || w.flush().await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    ok
                } else {
                    w.write_all(&bytes).await.is_ok() && w.flush().await.is_ok()
                };
                if !ok {
                    break;
                }
                Stats::add(&stats.bytes_out, bytes.len() as u64);
            }
        }
    }
    let _ = w.shutdown().await;
}

struct Session {
    shared: Arc<Shared>,
    index: usize,
    out: mpsc::Sender<Out>,
    logged_in: bool,
    challenge: Option<Vec<u8>>,
    generation: u64,
    streams: HashMap<String, oneshot::Sender<()>>,
}

impl Session {
    async fn send(&self, bytes: Vec<u8>) -> bool {
        self.out.send(Out::Bytes(bytes)).await.is_ok()
    }

    /// Handles one sentence; `false` ends the session.
    async fn handle(&mut self, s: Sentence) -> bool {
        let state = &self.shared.states[self.index];
        let faults = state.faults();
        if self.shared.offline(self.index) || state.runtime().generation != self.generation {
            return false;
        }
        let Kind::Command(path) = &s.kind else { return true };
        let path = path.clone();
        let tag = s.tag.clone();
        let tag = tag.as_deref();
        if path == "/login" {
            if faults.slow_login_ms > 0 {
                tokio::time::sleep(Duration::from_millis(faults.slow_login_ms)).await;
            }
            return self.login(&s, tag).await;
        }
        if !self.logged_in {
            let _ = self.send(fatal("not logged in")).await;
            return false;
        }
        if path == "/quit" {
            let _ = self.send(fatal("session terminated on request")).await;
            return false;
        }
        Stats::add(&state.stats.commands, 1);
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if faults.control_byte {
            return self.send(vec![0xF8, 0, 0, 0, 0]).await;
        }
        if path == "/cancel" {
            return self.cancel(&s, tag).await;
        }
        let Some((menu, verb)) = path.rsplit_once('/') else {
            return self.send(trap(&TrapReply::new(Some(0), "no such command"), tag)).await;
        };
        let world = &self.shared.world;
        let device = &world.devices[self.index];
        let runtime = state.runtime();
        let now = self.shared.clock.now();
        let ctx = Ctx {
            world,
            device,
            runtime,
            faults: &faults,
            now,
            ap_offline: device.ap.is_some_and(|(ap, _)| self.shared.offline(ap)),
            states: &self.shared.states,
        };
        match verb {
            "print" | "getall" => {
                let rows = match menus::print(&ctx, menu) {
                    Ok(rows) => rows,
                    Err(t) => return self.send(trap(&t, tag)).await,
                };
                self.answer_rows(rows, &s, tag, faults.disconnect_mid_reply).await
            }
            "monitor" => {
                let numbers = s.get("numbers").map(|n| n.into_owned()).unwrap_or_default();
                let once = s.get_raw("once").is_some();
                match menus::monitor(&ctx, menu, &numbers) {
                    Err(t) => self.send(trap(&t, tag)).await,
                    Ok(row) if once => {
                        let mut out = reply_words("!re", &row, tag);
                        out.extend(done(tag));
                        self.send(out).await
                    }
                    Ok(_) => self.start_monitor(menu.to_owned(), numbers, tag).await,
                }
            }
            _ if menus::menu_exists(&ctx, menu) => {
                self.send(trap(&TrapReply::new(Some(0), "no such command"), tag)).await
            }
            _ => {
                self.send(trap(&TrapReply::new(Some(0), "no such command prefix"), tag))
                    .await
            }
        }
    }

    async fn login(&mut self, s: &Sentence, tag: Option<&str>) -> bool {
        let state = &self.shared.states[self.index];
        let faults = state.faults();
        let device = &self.shared.world.devices[self.index];
        let name = s.get("name").map(|n| n.into_owned()).unwrap_or_default();
        let creds_ok = |password_ok: bool| !faults.auth_fail && name == self.shared.username && password_ok;
        if let Some(response) = s.get("response") {
            let ok = self.challenge.as_ref().is_some_and(|c| {
                challenge_response(&self.shared.password, &hex::encode(c)).is_ok_and(|want| want == *response)
            });
            return self.finish_login(creds_ok(ok), "cannot log in", tag).await;
        }
        if !device.version.plain_login() || s.get_raw("password").is_none() {
            // Pre-6.43 (or a bare /login): answer with a challenge, ignoring any password.
            let sessions = state.stats.sessions_total.load(std::sync::atomic::Ordering::Relaxed);
            let challenge: Vec<u8> = (0..2)
                .flat_map(|i| mix(device.seed ^ sessions.wrapping_mul(31) ^ i).to_be_bytes())
                .collect();
            let attrs = [("ret".to_owned(), hex::encode(&challenge))];
            self.challenge = Some(challenge);
            return self.send(reply_words("!done", &attrs, tag)).await;
        }
        let ok = s.get("password").is_some_and(|p| p == self.shared.password.as_str());
        self.finish_login(creds_ok(ok), "invalid user name or password (6)", tag)
            .await
    }

    async fn finish_login(&mut self, ok: bool, failure: &str, tag: Option<&str>) -> bool {
        let stats = &self.shared.states[self.index].stats;
        if ok {
            self.logged_in = true;
            Stats::add(&stats.logins, 1);
            self.send(done(tag)).await
        } else {
            Stats::add(&stats.failed_logins, 1);
            self.send(trap(&TrapReply::new(None, failure), tag)).await
        }
    }

    async fn answer_rows(&self, rows: Vec<Row>, s: &Sentence, tag: Option<&str>, cut: bool) -> bool {
        let props = s.requested_props();
        let mut selected = Vec::with_capacity(rows.len());
        for r in rows {
            match menus::matches(&r, &s.queries) {
                Ok(true) => selected.push(menus::project(r, props.as_deref())),
                Ok(false) => {}
                Err(t) => return self.send(trap(&t, tag)).await,
            }
        }
        if s.get_raw("count-only").is_some() {
            let attrs = [("ret".to_owned(), selected.len().to_string())];
            return self.send(reply_words("!done", &attrs, tag)).await;
        }
        let device = &self.shared.world.devices[self.index];
        let mut out = Vec::new();
        if selected.is_empty() && self.shared.sends_empty(device) {
            out.extend(reply_words("!empty", &[], tag));
        }
        let half = selected.len().div_ceil(2);
        for (i, r) in selected.iter().enumerate() {
            if cut && i == half && selected.len() > 1 {
                // Send what we have, then drop the connection mid-reply.
                let _ = self.send(out).await;
                return false;
            }
            out.extend(reply_words("!re", r, tag));
        }
        out.extend(done(tag));
        self.send(out).await
    }

    async fn start_monitor(&mut self, menu: String, numbers: String, tag: Option<&str>) -> bool {
        let Some(tag) = tag.map(str::to_owned) else {
            // An untagged stream could never be cancelled: refuse it.
            return self
                .send(trap(&TrapReply::new(Some(1), "streaming commands need a .tag"), None))
                .await;
        };
        let (stop_tx, mut stop_rx) = oneshot::channel();
        self.streams.insert(tag.clone(), stop_tx);
        let (shared, index, out) = (self.shared.clone(), self.index, self.out.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = tick.tick() => {
                        let state = &shared.states[index];
                        let faults = state.faults();
                        let device = &shared.world.devices[index];
                        let ctx = Ctx {
                            world: &shared.world,
                            device,
                            runtime: state.runtime(),
                            faults: &faults,
                            now: shared.clock.now(),
                            ap_offline: device.ap.is_some_and(|(ap, _)| shared.offline(ap)),
                            states: &shared.states,
                        };
                        let bytes = match menus::monitor(&ctx, &menu, &numbers) {
                            Ok(row) => reply_words("!re", &row, Some(&tag)),
                            Err(t) => trap(&t, Some(&tag)),
                        };
                        if out.send(Out::Bytes(bytes)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        true
    }

    async fn cancel(&mut self, s: &Sentence, tag: Option<&str>) -> bool {
        let targets: Vec<String> = match s.get("tag") {
            Some(t) => vec![t.into_owned()],
            None => self.streams.keys().cloned().collect(),
        };
        let mut out = Vec::new();
        for t in targets {
            if let Some(stop) = self.streams.remove(&t) {
                let _ = stop.send(());
                out.extend(trap(&TrapReply::new(Some(2), "interrupted"), Some(&t)));
            }
        }
        out.extend(done(tag));
        self.send(out).await
    }
}
