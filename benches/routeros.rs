//! RouterOS API codec throughput, beside a memcpy of the same bytes (the physical floor).
//!
//! Run: `cargo bench -p tod-benches --bench routeros`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tod_agent::routeros::Sentence;
use tod_agent::routeros::codec::{Decoder, Limits, encode_sentence};

/// A realistic reply stream: registration tables of 60 clients, 16 attributes a row.
fn registration_stream(tables: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut sentences = 0;
    for t in 0..tables {
        for c in 0..60 {
            let words = [
                "!re".to_owned(),
                format!("=.id=*{c:X}"),
                "=interface=wlan1".to_owned(),
                format!("=mac-address=02:00:00:{:02X}:{:02X}:{:02X}", t % 256, c, (t * 7) % 256),
                "=ap=false".to_owned(),
                format!("=signal-strength=-{}@HT20-7", 50 + c % 30),
                "=signal-to-noise=41".to_owned(),
                "=tx-signal-strength=-63".to_owned(),
                "=tx-ccq=91".to_owned(),
                "=tx-rate=866.7Mbps-80MHz/2S/SGI".to_owned(),
                "=rx-rate=780Mbps-80MHz/2S".to_owned(),
                "=uptime=3d4h12m7s".to_owned(),
                "=last-activity=10ms".to_owned(),
                format!("=distance={}", 300 + c * 17),
                format!("=last-ip=100.64.{}.{}", t % 250, c + 2),
                "=bytes=123456789012,9876543210".to_owned(),
                ".tag=t42".to_owned(),
            ];
            encode_sentence(&words, &mut out);
            sentences += 1;
        }
        encode_sentence(&["!done", ".tag=t42"], &mut out);
        sentences += 1;
    }
    (out, sentences)
}

fn codec(c: &mut Criterion) {
    let (stream, sentences) = registration_stream(200);
    let mut g = c.benchmark_group("routeros_codec");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("decode_words", |b| {
        b.iter(|| {
            let mut dec = Decoder::new(Limits::default());
            let mut buf = BytesMut::from(&stream[..]);
            let mut n = 0usize;
            while let Some(words) = dec.decode(&mut buf).unwrap() {
                n += words.len();
            }
            black_box(n)
        })
    });
    g.bench_function("decode_and_parse_sentences", |b| {
        b.iter(|| {
            let mut dec = Decoder::new(Limits::default());
            let mut buf = BytesMut::from(&stream[..]);
            let mut n = 0usize;
            while let Some(words) = dec.decode(&mut buf).unwrap() {
                n += Sentence::from_words(&words).unwrap().attrs.len();
            }
            black_box(n)
        })
    });
    // Decoding sees the bytes once; a copy of them is the floor any framing code can reach.
    g.bench_function("baseline_memcpy", |b| b.iter(|| black_box(BytesMut::from(&stream[..]))));
    let parsed: Vec<Sentence> = {
        let mut dec = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&stream[..]);
        let mut v = Vec::new();
        while let Some(words) = dec.decode(&mut buf).unwrap() {
            v.push(Sentence::from_words(&words).unwrap());
        }
        v
    };
    assert_eq!(parsed.len(), sentences);
    g.bench_function("encode_sentences", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(stream.len());
            for s in &parsed {
                s.encode(&mut out);
            }
            black_box(out.len())
        })
    });
    g.finish();
    println!(
        "stream: {} bytes, {} sentences ({} bytes/sentence)",
        stream.len(),
        sentences,
        stream.len() / sentences
    );
}

criterion_group!(benches, codec);
criterion_main!(benches);
