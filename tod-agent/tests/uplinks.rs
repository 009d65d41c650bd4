//! The broker uplinks against the real brokers on this machine: NATS JetStream and Mosquitto.

mod common;

use std::io::Read;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures_util::StreamExt;
use tod_agent::uplink::Uplink;
use tod_agent::uplink::nats::{NatsConfig, NatsUplink};
use tod_core::telemetry::{Batch, DeviceReport, PollStatus};
use tod_core::{AgentId, DeviceId};

fn batch(key: &str, n: u64) -> Batch {
    let at = Utc.timestamp_opt(1_780_000_000, 0).unwrap();
    let reports = (0..n)
        .map(|i| DeviceReport {
            registrations: Some(vec![]),
            ..DeviceReport::new(DeviceId::from_u128(5), i + 1, at, PollStatus::Online)
        })
        .collect();
    Batch::new(AgentId::from_u128(9), key, at, reports)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn nats_jetstream_acks_and_deduplicates_by_message_id() {
    let Some(url) = common::service("TOD_TEST_NATS_URL", "nats://127.0.0.1:4222") else {
        return;
    };
    let tag = format!(
        "{}_{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let config = NatsConfig {
        url: url.clone(),
        stream: format!("TOD_TEST_{tag}"),
        subject_prefix: format!("todtest.{tag}"),
        max_bytes: 16 << 20,
        max_age: Duration::from_secs(600),
        ..NatsConfig::default()
    };
    let uplink = NatsUplink::connect(&config, AgentId::from_u128(9)).await.unwrap();
    uplink.deliver(&batch("k-1", 3)).await.unwrap();
    uplink.deliver(&batch("k-1", 3)).await.unwrap(); // a redelivery after a lost ack
    uplink.deliver(&batch("k-2", 2)).await.unwrap();

    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let mut stream = js.get_stream(&config.stream).await.unwrap();
    let info = stream.info().await.unwrap().clone();
    assert_eq!(info.state.messages, 2, "the duplicate was dropped by Nats-Msg-Id");
    assert_eq!(info.config.max_bytes, 16 << 20, "explicit byte limit");
    assert_eq!(info.config.max_age, Duration::from_secs(600), "explicit age limit");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.fetch().max_messages(2).messages().await.unwrap();
    let mut keys = Vec::new();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        assert_eq!(
            m.headers.as_ref().unwrap().get("Content-Encoding").unwrap().as_str(),
            "gzip"
        );
        let b = Batch::from_json(&gunzip(&m.payload)).unwrap();
        keys.push(b.idempotency_key.clone());
        m.ack().await.unwrap();
    }
    assert_eq!(keys, vec!["k-1", "k-2"]);
    js.delete_stream(&config.stream).await.unwrap();
}

#[tokio::test]
async fn a_nats_uplink_made_while_the_broker_is_unreachable_delivers_once_it_answers() {
    let Some(url) = common::service("TOD_TEST_NATS_URL", "nats://127.0.0.1:4222") else {
        return;
    };
    let broker = url.split("://").nth(1).unwrap().to_owned();
    // A port where nothing listens yet; later a loopback proxy to the real broker takes it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tag = format!(
        "late_{}_{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let config = NatsConfig {
        url: format!("nats://127.0.0.1:{port}"),
        stream: format!("TOD_TEST_{tag}"),
        subject_prefix: format!("todtest.{tag}"),
        max_bytes: 16 << 20,
        max_age: Duration::from_secs(600),
        ..NatsConfig::default()
    };
    // Made without a broker: the daemon starts polling and spooling regardless.
    let uplink = NatsUplink::new(&config, AgentId::from_u128(9));
    match uplink.deliver(&batch("late-1", 1)).await {
        Err(tod_agent::uplink::UplinkError::Retry { reason, .. }) => {
            assert!(reason.contains("NATS"), "{reason}")
        }
        other => panic!("an unreachable broker is a retry, got {other:?}"),
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let proxy = tokio::spawn(async move {
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let broker = broker.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(broker).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    uplink.deliver(&batch("late-1", 1)).await.unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let mut stream = js.get_stream(&config.stream).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        1,
        "delivered once it could be"
    );
    js.delete_stream(&config.stream).await.unwrap();
    proxy.abort();
}

#[tokio::test]
async fn mqtt_qos1_publishes_are_acknowledged_and_received() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use tod_agent::uplink::mqtt::{MqttConfig, MqttUplink};
    let Some(url) = common::service("TOD_TEST_MQTT_URL", "mqtt://127.0.0.1:1883") else {
        return;
    };
    let hostport = url.split("://").nth(1).unwrap().to_owned();
    let (host, port) = hostport.split_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    let prefix = format!(
        "todtest/{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let agent = AgentId::from_u128(9);

    // A subscriber, as the server's consumer will be.
    let (sub, mut sub_loop) = AsyncClient::new(MqttOptions::new(format!("sub-{prefix}"), host, port), 16);
    sub.subscribe(format!("{prefix}/#"), QoS::AtLeastOnce).await.unwrap();
    let received = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 2 {
            if let Ok(Event::Incoming(Packet::Publish(p))) = sub_loop.poll().await {
                got.push((p.topic.clone(), Batch::from_json(&gunzip(&p.payload)).unwrap()));
            }
        }
        got
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let uplink = MqttUplink::start(
        &MqttConfig {
            host: host.into(),
            port,
            topic_prefix: prefix.clone(),
            ..MqttConfig::default()
        },
        agent,
    );
    uplink.deliver(&batch("m-1", 2)).await.unwrap();
    uplink.deliver(&batch("m-2", 4)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), received)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got[0].0, format!("{prefix}/{agent}"));
    assert_eq!(
        got.iter().map(|g| g.1.idempotency_key.as_str()).collect::<Vec<_>>(),
        vec!["m-1", "m-2"]
    );
    assert_eq!(got[1].1.reports.len(), 4);
}
