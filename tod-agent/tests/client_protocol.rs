//! The client against a scripted peer over an in-memory duplex: the protocol corner cases a real
//! router produces rarely (several traps, `!fatal` mid-command, `!empty`, replies that never
//! come, interleaved tags) are produced here on purpose, byte for byte.

use std::time::Duration;

use bytes::BytesMut;
use tod_agent::routeros::client::{Client, ClientConfig, Credentials, Error, Phase};
use tod_agent::routeros::codec::{Decoder, encode_sentence};
use tod_agent::routeros::{Kind, Sentence};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

fn creds() -> Credentials {
    Credentials {
        username: "admin".into(),
        password: "pw".into(),
    }
}

fn reply(words: &[&str], tag: &str) -> Vec<u8> {
    let mut ws: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    ws.push(format!(".tag={tag}"));
    let mut out = Vec::new();
    encode_sentence(&ws, &mut out);
    out
}

/// A scripted router: logs the client in, then hands every later command to `script`, which
/// returns the bytes to send back (possibly nothing).
async fn peer(
    mut io: DuplexStream,
    mut script: impl FnMut(&Sentence) -> Vec<u8> + Send + 'static,
    seen: mpsc::UnboundedSender<Sentence>,
) {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::new();
    loop {
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Ok(Some(words)) = dec.decode(&mut buf) {
            let s = Sentence::from_words(&words).unwrap();
            let tag = s.tag.clone().unwrap_or_default();
            let _ = seen.send(s.clone());
            let out = if s.kind == Kind::Command("/login".into()) {
                reply(&["!done"], &tag)
            } else {
                script(&s)
            };
            if io.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

async fn connect(
    script: impl FnMut(&Sentence) -> Vec<u8> + Send + 'static,
    config: ClientConfig,
) -> (Client, mpsc::UnboundedReceiver<Sentence>) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(peer(b, script, tx));
    (Client::over(a, &creds(), config).await.unwrap(), rx)
}

fn tag(s: &Sentence) -> String {
    s.tag.clone().unwrap()
}

#[tokio::test]
async fn empty_is_not_terminal_and_done_ends_the_command() {
    let (c, _) = connect(
        |s| [reply(&["!empty"], &tag(s)), reply(&["!done"], &tag(s))].concat(),
        ClientConfig::default(),
    )
    .await;
    let r = c.command(Sentence::command("/ip/neighbor/print")).await.unwrap();
    assert!(r.empty && r.rows.is_empty());
    // The next command gets its own answer: no off-by-one after !empty.
    let r = c.command(Sentence::command("/ip/neighbor/print")).await.unwrap();
    assert!(r.empty);
}

#[tokio::test]
async fn several_traps_before_done_are_collected() {
    let (c, _) = connect(
        |s| {
            let t = tag(s);
            [
                reply(&["!trap", "=category=1", "=message=first"], &t),
                reply(&["!trap", "=message=second"], &t),
                reply(&["!done"], &t),
            ]
            .concat()
        },
        ClientConfig::default(),
    )
    .await;
    match c.command(Sentence::command("/x/set")).await {
        Err(Error::Trap(traps)) => {
            assert_eq!(traps.len(), 2);
            assert_eq!((traps[0].category, traps[0].message.as_str()), (Some(1), "first"));
            assert_eq!((traps[1].category, traps[1].message.as_str()), (None, "second"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!c.is_closed(), "a trap is a command error, the session lives on");
}

#[tokio::test]
async fn fatal_fails_every_command_in_flight_and_closes() {
    let mut n = 0;
    let (c, _) = connect(
        move |_| {
            n += 1;
            // Answer nothing to the first command; the second triggers !fatal.
            if n == 2 {
                let mut out = Vec::new();
                encode_sentence(&["!fatal", "session terminated on request"], &mut out);
                out
            } else {
                Vec::new()
            }
        },
        ClientConfig::default(),
    )
    .await;
    let c2 = c.clone();
    let first = tokio::spawn(async move { c2.command(Sentence::command("/a/print")).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = c.command(Sentence::command("/b/print")).await;
    assert_eq!(second, Err(Error::Fatal("session terminated on request".into())));
    assert_eq!(
        first.await.unwrap(),
        Err(Error::Fatal("session terminated on request".into()))
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(c.is_closed());
    assert!(matches!(
        c.command(Sentence::command("/c/print")).await,
        Err(Error::Closed(_))
    ));
}

#[tokio::test]
async fn interleaved_replies_are_routed_by_tag() {
    // Holds the first command; on the second, answers both with their rows interleaved.
    let mut held: Option<String> = None;
    let (c, _) = connect(
        move |s| {
            let t = tag(s);
            match held.take() {
                None => {
                    held = Some(t);
                    Vec::new()
                }
                Some(first) => [
                    reply(&["!re", "=who=second-1"], &t),
                    reply(&["!re", "=who=first-1"], &first),
                    reply(&["!re", "=who=second-2"], &t),
                    reply(&["!done"], &t),
                    reply(&["!re", "=who=first-2"], &first),
                    reply(&["!done"], &first),
                ]
                .concat(),
            }
        },
        ClientConfig::default(),
    )
    .await;
    let c1 = c.clone();
    let a = tokio::spawn(async move { c1.command(Sentence::command("/a/print")).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let b = c.command(Sentence::command("/b/print")).await.unwrap();
    let a = a.await.unwrap().unwrap();
    let who = |r: &tod_agent::routeros::client::Reply| {
        r.rows
            .iter()
            .map(|s| s.get("who").unwrap().into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(who(&a), vec!["first-1", "first-2"]);
    assert_eq!(who(&b), vec!["second-1", "second-2"]);
}

#[tokio::test]
async fn a_deadline_cancels_and_the_session_stays_in_step() {
    // The peer answers /slow only when cancelled, and everything else at once.
    let (c, mut seen) = connect(
        |s| {
            let t = tag(s);
            match s.kind.as_word() {
                "/slow/print" => Vec::new(),
                "/cancel" => {
                    let target = s.get("tag").unwrap().into_owned();
                    [
                        reply(&["!trap", "=category=2", "=message=interrupted"], &target),
                        reply(&["!done"], &target),
                        reply(&["!done"], &t),
                    ]
                    .concat()
                }
                _ => [reply(&["!re", "=name=fast"], &t), reply(&["!done"], &t)].concat(),
            }
        },
        ClientConfig::default(),
    )
    .await;
    let started = std::time::Instant::now();
    let r = c
        .command_within(Sentence::command("/slow/print"), Duration::from_millis(100))
        .await;
    assert_eq!(r, Err(Error::Timeout(Phase::Command)));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the caller is answered at the deadline"
    );
    let r = c.command(Sentence::command("/fast/print")).await.unwrap();
    assert_eq!(r.rows[0].get("name").as_deref(), Some("fast"));
    let mut kinds = Vec::new();
    while let Ok(s) = seen.try_recv() {
        kinds.push(s.kind.as_word().to_owned());
    }
    assert!(kinds.contains(&"/cancel".to_owned()), "{kinds:?}");
    assert!(!c.is_closed());
}

#[tokio::test]
async fn a_cancel_that_is_never_answered_drops_the_connection() {
    let config = ClientConfig {
        cancel_grace: Duration::from_millis(100),
        ..ClientConfig::default()
    };
    let (c, _) = connect(|_| Vec::new(), config).await;
    let r = c
        .command_within(Sentence::command("/stuck/print"), Duration::from_millis(50))
        .await;
    assert_eq!(r, Err(Error::Timeout(Phase::Command)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.is_closed(), "a session with an unanswered cancel is not trusted");
}

#[tokio::test]
async fn unknown_tags_and_untagged_replies_are_ignored() {
    let (c, _) = connect(
        |s| {
            let mut out = reply(&["!re", "=name=stray"], "nobody");
            encode_sentence(&["!re", "=name=untagged"], &mut out);
            out.extend(reply(&["!weird"], &tag(s)));
            out.extend(reply(&["!re", "=name=mine"], &tag(s)));
            out.extend(reply(&["!done", "=ret=*7"], &tag(s)));
            out
        },
        ClientConfig::default(),
    )
    .await;
    let r = c.command(Sentence::command("/x/add")).await.unwrap();
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.rows[0].get("name").as_deref(), Some("mine"));
    assert_eq!(r.ret.as_deref(), Some("*7"));
}

#[tokio::test]
async fn a_control_byte_is_a_protocol_error() {
    let (c, _) = connect(|_| vec![0xF8, 1, 2, 3], ClientConfig::default()).await;
    assert!(matches!(
        c.command(Sentence::command("/x/print")).await,
        Err(Error::Protocol(_))
    ));
}

#[tokio::test]
async fn rows_beyond_the_limit_fail_the_command_not_the_memory() {
    let config = ClientConfig {
        max_rows: 10,
        ..ClientConfig::default()
    };
    let (c, _) = connect(
        |s| {
            let t = tag(s);
            match s.kind.as_word() {
                "/cancel" => reply(&["!done"], &t),
                _ => {
                    let mut out = Vec::new();
                    for _ in 0..50 {
                        out.extend(reply(&["!re", "=x=1"], &t));
                    }
                    out.extend(reply(&["!done"], &t));
                    out
                }
            }
        },
        config,
    )
    .await;
    assert!(matches!(
        c.command(Sentence::command("/big/print")).await,
        Err(Error::Protocol(_))
    ));
}

#[tokio::test]
async fn legacy_login_answers_the_challenge() {
    let (a, mut b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        while got.len() < 2 {
            b.read_buf(&mut buf).await.unwrap();
            while let Ok(Some(w)) = dec.decode(&mut buf) {
                let s = Sentence::from_words(&w).unwrap();
                let t = tag(&s);
                let out = if got.is_empty() {
                    reply(&["!done", "=ret=ebddd18e5b1cc4e8c5a3b9a6b0f3a7f2"], &t)
                } else {
                    reply(&["!done"], &t)
                };
                got.push(s);
                b.write_all(&out).await.unwrap();
            }
        }
        got
    });
    let c = Client::over(
        a,
        &Credentials {
            username: "admin".into(),
            password: "secret".into(),
        },
        ClientConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(c.login_flow(), tod_agent::routeros::client::LoginFlow::Challenge);
    let got = server.await.unwrap();
    assert_eq!(
        got[1].get("response").as_deref(),
        Some("00965b6ff8ddfc2a5b8ca3c931a15619fd")
    );
}
