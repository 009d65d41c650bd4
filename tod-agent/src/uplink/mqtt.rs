//! The MQTT uplink: QoS 1 publishes of gzip-compressed JSON batches on `<prefix>/<agent id>`,
//! with a persistent session (clean session off, client id = agent id). A batch counts as
//! delivered when the broker's PUBACK for its packet id arrives. The event loop is always polled,
//! from its own task, and reconnects by itself; publishes not acknowledged in time are retried by
//! the forwarder (the server de-duplicates by idempotency key).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tod_core::telemetry::Batch;
use tokio::sync::{Mutex, oneshot};

use super::{Uplink, UplinkError};

/// MQTT settings.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker host (the tunnel's local forward).
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Topics are `<prefix>/<agent id>`.
    pub topic_prefix: String,
    /// How long to wait for a PUBACK.
    pub ack_timeout: Duration,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1883,
            topic_prefix: "tod/telemetry".into(),
            ack_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct Acks {
    /// Publishes handed to the client, waiting for their packet id, in order.
    unassigned: VecDeque<oneshot::Sender<()>>,
    /// Publishes on the wire, by packet id.
    by_pkid: HashMap<u16, oneshot::Sender<()>>,
}

/// An MQTT uplink.
pub struct MqttUplink {
    client: AsyncClient,
    topic: String,
    acks: Arc<std::sync::Mutex<Acks>>,
    order: Mutex<()>,
    ack_timeout: Duration,
    events: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MqttUplink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttUplink")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Drop for MqttUplink {
    fn drop(&mut self) {
        self.events.abort();
    }
}

impl MqttUplink {
    /// Starts the client and its event loop.
    pub fn start(config: &MqttConfig, agent: tod_core::AgentId) -> Self {
        let mut opts = MqttOptions::new(format!("tod-agent-{agent}"), config.host.clone(), config.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_session(false);
        opts.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let acks: Arc<std::sync::Mutex<Acks>> = Arc::default();
        let a = acks.clone();
        let events = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        let mut a = a.lock().expect("acks lock");
                        if let Some(tx) = a.unassigned.pop_front() {
                            a.by_pkid.insert(pkid, tx);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(tx) = a.lock().expect("acks lock").by_pkid.remove(&ack.pkid) {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "MQTT connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Self {
            client,
            topic: format!("{}/{agent}", config.topic_prefix),
            acks,
            order: Mutex::new(()),
            ack_timeout: config.ack_timeout,
            events,
        }
    }
}

#[async_trait::async_trait]
impl Uplink for MqttUplink {
    async fn deliver(&self, batch: &Batch) -> Result<(), UplinkError> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&batch.to_json())
            .map_err(|e| UplinkError::Rejected(e.to_string()))?;
        let body = gz.finish().map_err(|e| UplinkError::Rejected(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        {
            // Publishes reach the wire in the order they are handed over; keep our FIFO in step.
            let _order = self.order.lock().await;
            self.acks.lock().expect("acks lock").unassigned.push_back(tx);
            if let Err(e) = self
                .client
                .publish(self.topic.clone(), QoS::AtLeastOnce, false, body)
                .await
            {
                self.acks.lock().expect("acks lock").unassigned.pop_back();
                return Err(UplinkError::Retry {
                    reason: format!("MQTT publish: {e}"),
                    after: None,
                });
            }
        }
        match tokio::time::timeout(self.ack_timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(UplinkError::Retry {
                reason: format!("no PUBACK within {:?}", self.ack_timeout),
                after: None,
            }),
        }
    }

    fn name(&self) -> &'static str {
        "mqtt"
    }
}
