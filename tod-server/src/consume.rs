//! The broker inputs of the ingest pipeline (NATS JetStream, MQTT).
//!
//! NATS:  a durable pull consumer, shared by every
//! server replica (a work queue), on the stream the agents publish to (`<prefix>.<agent id>`).
//!
//! A message is acknowledged only after its batch is committed (or found to be a duplicate). A
//! message that can never be stored — undecodable, an unknown or revoked agent, a batch naming
//! another agent or another site's device — is published to `<dead-letter prefix>.<agent id>`
//! with the reason in a `Tod-Reason` header and then terminated, so it neither blocks the consumer
//! nor comes back. A storage failure is negatively acknowledged with a delay and redelivered.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;
use tod_core::AgentId;

use crate::ingest::{IngestError, process};
use crate::store::Store;

/// Where the consumer reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsIngest {
    /// `nats://host:port`.
    pub url: String,
    /// The agents' stream.
    pub stream: String,
    /// Its subjects are `<subject_prefix>.<agent id>`.
    pub subject_prefix: String,
    /// Refused messages go to `<dead_letter_prefix>.<agent id>`.
    pub dead_letter_prefix: String,
    /// The durable consumer's name (shared by replicas).
    pub durable: String,
    /// How long a message taken by a replica may go unacknowledged before JetStream hands it to
    /// another (a replica that stopped mid-batch); set when the durable consumer is created.
    pub ack_wait: Duration,
    /// The clock a batch is ingested at (the server's, [`crate::settings::Settings::clock`]).
    pub clock: tod_agent::clock::Clock,
}

impl NatsIngest {
    /// The defaults the agent uses, at `url`.
    pub fn at(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            stream: "TOD_TELEMETRY".into(),
            subject_prefix: "tod.telemetry".into(),
            dead_letter_prefix: "tod.deadletter".into(),
            durable: "tod-server-ingest".into(),
            ack_wait: Duration::from_secs(60),
            clock: tod_agent::clock::Clock::System,
        }
    }
}

/// A running consumer.
#[derive(Debug)]
pub struct NatsConsumer {
    task: tokio::task::JoinHandle<()>,
    client: async_nats::Client,
}

impl NatsConsumer {
    /// Connects, makes sure the stream (with the agents' limits) and the durable consumer exist,
    /// and starts consuming into `store`.
    pub async fn start(config: NatsIngest, store: std::sync::Arc<dyn Store>) -> Result<Self, String> {
        let client = async_nats::connect(&config.url)
            .await
            .map_err(|e| format!("NATS {}: {e}", config.url))?;
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![format!("{}.>", config.subject_prefix)],
                max_bytes: 1 << 30,
                max_age: Duration::from_secs(7 * 86_400),
                duplicate_window: Duration::from_secs(3_600),
                discard: stream::DiscardPolicy::Old,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("JetStream stream {}: {e}", config.stream))?;
        let consumer = stream
            .get_or_create_consumer(
                &config.durable,
                consumer::pull::Config {
                    durable_name: Some(config.durable.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_deliver: 20,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("JetStream consumer {}: {e}", config.durable))?;
        let task = tokio::spawn(run(consumer, client.clone(), config, store));
        Ok(Self { task, client })
    }

    /// Whether the broker connection is up (readiness).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Stops consuming (unacknowledged messages are redelivered to another replica).
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Batches one replica stores at once. Most of a batch's time is round trips to the database
/// and its commit, so one at a time left the database idle between statements and a 20 000-device
/// fleet's batches queued for seconds behind each other. One agent's batches always share a lane,
/// so they are stored in the order it sent them.
const LANES: usize = 4;

async fn run(
    consumer: consumer::Consumer<consumer::pull::Config>,
    client: async_nats::Client,
    config: NatsIngest,
    store: std::sync::Arc<dyn Store>,
) {
    // The lanes end with this task: dropping the set aborts them, and what they had taken
    // unacknowledged is redelivered after `ack_wait`.
    let mut lanes = tokio::task::JoinSet::new();
    let senders: Vec<tokio::sync::mpsc::Sender<jetstream::Message>> = (0..LANES)
        .map(|_| {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            lanes.spawn(lane(rx, client.clone(), config.clone(), store.clone()));
            tx
        })
        .collect();
    loop {
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "JetStream consumer; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(next) = messages.next().await {
            let msg = match next {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "JetStream message");
                    continue;
                }
            };
            let lane = lane_of(msg.subject.as_str());
            if senders[lane].send(msg).await.is_err() {
                tracing::error!(lane, "an ingest lane ended; the consumer stops");
                return;
            }
        }
    }
}

/// The lane of a subject: its agent's, the same for every batch of that agent.
fn lane_of(subject: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    subject.hash(&mut h);
    (h.finish() % LANES as u64) as usize
}

/// Stores one lane's batches in turn, acknowledging each after its commit.
async fn lane(
    mut rx: tokio::sync::mpsc::Receiver<jetstream::Message>,
    client: async_nats::Client,
    config: NatsIngest,
    store: std::sync::Arc<dyn Store>,
) {
    while let Some(msg) = rx.recv().await {
        let agent_token = msg.subject.as_str().rsplit('.').next().unwrap_or_default().to_owned();
        let gzip = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Content-Encoding"))
            .is_some_and(|v| v.as_str().eq_ignore_ascii_case("gzip"));
        let outcome = deliver(
            store.as_ref(),
            msg.subject.as_str(),
            &agent_token,
            (&msg.payload, gzip),
            config.clock.now(),
        )
        .await;
        let ack = match outcome {
            Ok(()) => msg.ack().await,
            Err(Disposition::Retry(reason)) => {
                tracing::warn!(%reason, "ingest failed; redelivery in 5 s");
                msg.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await
            }
            Err(Disposition::DeadLetter(reason)) => {
                tracing::warn!(%reason, agent = %agent_token, "batch dead-lettered");
                let mut headers = HeaderMap::new();
                headers.insert("Tod-Reason", reason.as_str());
                headers.insert("Tod-Subject", msg.subject.as_str());
                let subject = format!("{}.{}", config.dead_letter_prefix, agent_token);
                if let Err(e) = client.publish_with_headers(subject, headers, msg.payload.clone()).await {
                    tracing::warn!(error = %e, "dead letter not published");
                }
                msg.ack_with(AckKind::Term).await
            }
        };
        if let Err(e) = ack {
            tracing::warn!(error = %e, "JetStream acknowledgement");
        }
    }
}

enum Disposition {
    Retry(String),
    DeadLetter(String),
}

/// One broker delivery at `now`: `channel` is the subject or topic, whose last segment names the
/// agent.
async fn deliver(
    store: &dyn Store,
    channel: &str,
    agent: &str,
    (payload, gzip): (&[u8], bool),
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Disposition> {
    let id: AgentId = agent
        .parse()
        .map_err(|_| Disposition::DeadLetter(format!("{channel} does not end in an agent id")))?;
    let agent = store
        .live_agent(id)
        .await
        .map_err(|e| Disposition::Retry(e.to_string()))?
        .ok_or_else(|| Disposition::DeadLetter(format!("unknown or revoked agent {id}")))?;
    match process(store, &agent, payload, gzip, now).await {
        Ok(_) => Ok(()),
        Err(IngestError::Store(e)) => Err(Disposition::Retry(e.to_string())),
        Err(other) => Err(Disposition::DeadLetter(other.to_string())),
    }
}

/// Where the MQTT consumer subscribes and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttIngest {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The agents publish on `<topic_prefix>/<agent id>`.
    pub topic_prefix: String,
    /// Refused messages go to `<dead_letter_prefix>/<agent id>` as JSON with the reason.
    pub dead_letter_prefix: String,
    /// Replicas in the same group share the subscription (`$share/<group>/...`).
    pub group: String,
    /// This replica's MQTT client id: its persistent session, so what the broker holds for it
    /// while it is down (and what it took without acknowledging) comes back when it restarts.
    /// Unique per replica and stable across its restarts.
    pub client_id: String,
    /// The clock a batch is ingested at (the server's, [`crate::settings::Settings::clock`]).
    pub clock: tod_agent::clock::Clock,
}

impl MqttIngest {
    /// The defaults the agent uses, at `host:port`, for the replica `client_id`.
    pub fn at(host: &str, port: u16, client_id: &str) -> Self {
        Self {
            host: host.to_owned(),
            port,
            topic_prefix: "tod/telemetry".into(),
            dead_letter_prefix: "tod/deadletter".into(),
            group: "tod-server".into(),
            client_id: client_id.to_owned(),
            clock: tod_agent::clock::Clock::System,
        }
    }
}

/// A running MQTT consumer: a shared subscription at QoS 1 whose messages are acknowledged
/// (manual PUBACK) only after their batch is committed or dead-lettered.
#[derive(Debug)]
pub struct MqttConsumer {
    task: tokio::task::JoinHandle<()>,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl MqttConsumer {
    /// Connects (the replica's persistent session) and starts consuming into `store`.
    pub fn start(config: MqttIngest, store: std::sync::Arc<dyn Store>) -> Self {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let mut opts = MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_session(false);
        opts.set_manual_acks(true);
        opts.set_max_packet_size(64 << 20, 64 << 20);
        let (client, mut events) = AsyncClient::new(opts, 64);
        let connected = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let up = connected.clone();
        let task = tokio::spawn(async move {
            let filter = format!("$share/{}/{}/+", config.group, config.topic_prefix);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        up.store(true, std::sync::atomic::Ordering::Relaxed);
                        if let Err(e) = client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                            tracing::warn!(error = %e, "MQTT subscribe");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let agent = p.topic.rsplit('/').next().unwrap_or_default().to_owned();
                        // Every agent sends gzip; a plain JSON body is accepted too.
                        let gzip = p.payload.starts_with(&[0x1f, 0x8b]);
                        let outcome =
                            deliver(store.as_ref(), &p.topic, &agent, (&p.payload, gzip), config.clock.now()).await;
                        match outcome {
                            Ok(()) => {}
                            Err(Disposition::Retry(reason)) => {
                                // No PUBACK: the broker redelivers when this session reconnects.
                                tracing::warn!(%reason, "ingest failed; reconnecting for redelivery");
                                let _ = client.disconnect().await;
                                continue;
                            }
                            Err(Disposition::DeadLetter(reason)) => {
                                tracing::warn!(%reason, %agent, "batch dead-lettered");
                                let letter = serde_json::json!({
                                    "reason": reason,
                                    "topic": p.topic,
                                    "payload_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &p.payload),
                                });
                                let topic = format!("{}/{}", config.dead_letter_prefix, agent);
                                if let Err(e) = client.publish(topic, QoS::AtLeastOnce, false, letter.to_string()).await
                                {
                                    tracing::warn!(error = %e, "dead letter not published");
                                }
                            }
                        }
                        if let Err(e) = client.ack(&p).await {
                            tracing::warn!(error = %e, "MQTT acknowledgement");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        up.store(false, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(error = %e, "MQTT connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Self { task, connected }
    }

    /// Whether the broker connection is up.
    pub fn connected(&self) -> bool {
        self.connected.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops consuming.
    pub fn stop(&self) {
        self.task.abort();
    }
}
