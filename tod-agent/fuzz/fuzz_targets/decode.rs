//! The RouterOS API decoder on arbitrary bytes, fed in arbitrary chunks: it must never panic,
//! never buffer past its limits, and every sentence it returns must parse or fail cleanly.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tod_agent::routeros::codec::{Decoder, Limits};
use tod_agent::routeros::Sentence;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let limits = Limits { max_word: 4096, max_sentence: 16384, lenient_five_byte: chunk % 2 == 0 };
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(words)) => {
                    assert!(words.iter().all(|w| !w.is_empty() && w.len() <= limits.max_word));
                    assert!(words.iter().map(|w| w.len()).sum::<usize>() <= limits.max_sentence);
                    if let Ok(s) = Sentence::from_words(&words) {
                        let mut out = Vec::new();
                        s.encode(&mut out);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Never more than one sentence's worth (plus one prefix and one read) stays buffered.
        assert!(buf.len() <= limits.max_sentence + limits.max_word + chunk + 5);
    }
});
