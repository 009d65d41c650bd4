//! The RouterOS API framing, sans-IO: word length prefixes and sentence splitting.
//!
//! A word is a length prefix and that many bytes; a sentence is words ended by an empty word.
//! The prefix has five forms chosen by the high bits of the first byte (1 to 5 bytes, big-endian).
//! Bytes 0xF8–0xFF are reserved control bytes and a protocol error; 0xF1–0xF7 are unspecified and
//! accepted as the 5-byte form only in lenient mode. The encoder always writes the minimal form; the
//! decoder accepts non-minimal forms.
//!
//! The decoder works on a `BytesMut` the caller fills from any transport, accepts input split at
//! any byte boundary, and checks the word and sentence limits *before* waiting for (and so before
//! buffering) the payload, so a hostile length cannot make it allocate gigabytes.

use bytes::{Buf, Bytes, BytesMut};

/// Size limits and leniency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted word, bytes (16 MiB).
    pub max_word: usize,
    /// Largest accepted sentence (sum of its words), bytes (16 MiB).
    pub max_sentence: usize,
    /// Accept 0xF1–0xF7 as the 5-byte form (RouterOS only sends 0xF0).
    pub lenient_five_byte: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_word: 16 << 20,
            max_sentence: 16 << 20,
            lenient_five_byte: false,
        }
    }
}

/// A framing violation. The connection cannot be trusted after one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A reserved control byte where a length was expected.
    #[error("reserved control byte 0x{0:02X} where a word length was expected")]
    ControlByte(u8),
    /// A word longer than the limit.
    #[error("word of {len} bytes exceeds the limit of {max}")]
    WordTooLong {
        /// Announced length.
        len: u64,
        /// Limit.
        max: usize,
    },
    /// A sentence longer than the limit.
    #[error("sentence of more than {max} bytes")]
    SentenceTooLong {
        /// Limit.
        max: usize,
    },
    /// A sentence that makes no sense (e.g. no leading word kind).
    #[error("malformed sentence: {0}")]
    Malformed(String),
}

/// Appends the minimal length prefix for `len`.
pub fn encode_length(len: u32, out: &mut Vec<u8>) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0x3FFF => out.extend_from_slice(&((len as u16) | 0x8000).to_be_bytes()),
        0x4000..=0x1F_FFFF => out.extend_from_slice(&(len | 0x00C0_0000).to_be_bytes()[1..]),
        0x20_0000..=0x0FFF_FFFF => out.extend_from_slice(&(len | 0xE000_0000).to_be_bytes()),
        _ => {
            out.push(0xF0);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// Decodes a length prefix at the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// length and the prefix size.
pub fn decode_length(buf: &[u8], lenient_five_byte: bool) -> Result<Option<(u32, usize)>, ProtocolError> {
    let Some(&b0) = buf.first() else { return Ok(None) };
    let (size, first) = match b0 {
        0x00..=0x7F => return Ok(Some((u32::from(b0), 1))),
        0x80..=0xBF => (2, u32::from(b0 & 0x3F)),
        0xC0..=0xDF => (3, u32::from(b0 & 0x1F)),
        0xE0..=0xEF => (4, u32::from(b0 & 0x0F)),
        0xF0 => (5, 0),
        0xF1..=0xF7 if lenient_five_byte => (5, 0),
        _ => return Err(ProtocolError::ControlByte(b0)),
    };
    if buf.len() < size {
        return Ok(None);
    }
    let len = buf[1..size].iter().fold(first, |acc, &b| (acc << 8) | u32::from(b));
    Ok(Some((len, size)))
}

/// Appends one word (prefix and bytes).
///
/// # Panics
/// Never for words the API can carry; a word over 4 GiB cannot be framed and panics.
pub fn encode_word(word: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(word.len()).expect("RouterOS words are at most 4 GiB");
    encode_length(len, out);
    out.extend_from_slice(word);
}

/// Appends a sentence: its words and the terminating empty word.
pub fn encode_sentence<W: AsRef<[u8]>>(words: &[W], out: &mut Vec<u8>) {
    for w in words {
        encode_word(w.as_ref(), out);
    }
    out.push(0);
}

/// Splits a byte stream into sentences (lists of raw words).
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    words: Vec<Bytes>,
    sentence_bytes: usize,
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            words: Vec::new(),
            sentence_bytes: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether a sentence is partly decoded (words seen, no terminator yet).
    pub fn in_sentence(&self) -> bool {
        !self.words.is_empty()
    }

    /// Takes complete words from the front of `buf`. Returns the next complete non-empty sentence,
    /// or `Ok(None)` when `buf` holds no complete sentence yet (everything consumed so far is kept
    /// in the decoder, so the caller just appends more bytes and calls again). Empty sentences
    /// (a lone terminator) are skipped, as the protocol requires.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            let Some((len, prefix)) = decode_length(buf, self.limits.lenient_five_byte)? else {
                return Ok(None);
            };
            let len = len as usize;
            if len > self.limits.max_word {
                return Err(ProtocolError::WordTooLong {
                    len: len as u64,
                    max: self.limits.max_word,
                });
            }
            if self.sentence_bytes + len > self.limits.max_sentence {
                return Err(ProtocolError::SentenceTooLong {
                    max: self.limits.max_sentence,
                });
            }
            if buf.len() < prefix + len {
                // Let the caller's next read fit the whole word in one allocation.
                buf.reserve(prefix + len - buf.len());
                return Ok(None);
            }
            buf.advance(prefix);
            if len == 0 {
                self.sentence_bytes = 0;
                if self.words.is_empty() {
                    continue;
                }
                return Ok(Some(std::mem::take(&mut self.words)));
            }
            self.sentence_bytes += len;
            self.words.push(buf.split_to(len).freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// The vectors of the protocol reference, §1.2.
    const VECTORS: [(u32, &str); 13] = [
        (0x00, "00"),
        (0x01, "01"),
        (0x7F, "7F"),
        (0x80, "80 80"),
        (0xFF, "80 FF"),
        (0x12C, "81 2C"),
        (0x3FFF, "BF FF"),
        (0x4000, "C0 40 00"),
        (0x1F_FFFF, "DF FF FF"),
        (0x20_0000, "E0 20 00 00"),
        (0x0FFF_FFFF, "EF FF FF FF"),
        (0x1000_0000, "F0 10 00 00 00"),
        (0xFFFF_FFFF, "F0 FF FF FF FF"),
    ];

    #[test]
    fn golden_length_vectors_both_directions() {
        for (len, bytes) in VECTORS {
            let want = hex(bytes);
            let mut out = Vec::new();
            encode_length(len, &mut out);
            assert_eq!(out, want, "encode {len:#x}");
            assert_eq!(
                decode_length(&want, false),
                Ok(Some((len, want.len()))),
                "decode {bytes}"
            );
            // Every strict prefix of the encoding asks for more bytes.
            for cut in 0..want.len() {
                assert_eq!(decode_length(&want[..cut], false), Ok(None), "{bytes} cut at {cut}");
            }
        }
    }

    #[test]
    fn non_minimal_forms_decode_and_control_bytes_do_not() {
        assert_eq!(decode_length(&hex("80 05"), false), Ok(Some((5, 2))));
        assert_eq!(decode_length(&hex("C0 00 05"), false), Ok(Some((5, 3))));
        assert_eq!(decode_length(&hex("E0 00 00 05"), false), Ok(Some((5, 4))));
        for b in 0xF8..=0xFF {
            assert_eq!(
                decode_length(&[b, 0, 0, 0, 0], true),
                Err(ProtocolError::ControlByte(b))
            );
        }
        assert_eq!(
            decode_length(&hex("F3 00 00 00 05"), false),
            Err(ProtocolError::ControlByte(0xF3))
        );
        assert_eq!(decode_length(&hex("F3 00 00 00 05"), true), Ok(Some((5, 5))));
        assert_eq!(decode_length(&hex("F0 00 00"), false), Ok(None));
    }

    #[test]
    fn login_sentence_matches_the_reference_bytes() {
        let mut out = Vec::new();
        encode_sentence(&["/login", "=name=admin", "=password=secret"], &mut out);
        let want = hex(
            "06 2F 6C 6F 67 69 6E 0B 3D 6E 61 6D 65 3D 61 64 6D 69 6E 10 3D 70 61 73 73 77 6F 72 64 3D 73 65 63 72 65 74 00",
        );
        assert_eq!(out, want);
        assert_eq!(out.len(), 37);
        let mut done = Vec::new();
        encode_sentence(&["!done"], &mut done);
        assert_eq!(done, hex("05 21 64 6F 6E 65 00"));
    }

    #[test]
    fn sentences_split_anywhere_and_zero_bytes_inside_words_are_not_ends() {
        let long = vec![0u8; 0x4000];
        let mut stream = Vec::new();
        encode_sentence(&[b"!re".as_slice(), b"=comment=".as_slice(), &long], &mut stream);
        stream.push(0); // an empty sentence, ignored
        encode_sentence(&["!done", ".tag=7"], &mut stream);
        for split in [1, 2, 3, 7, 100, 0x4001, stream.len() - 1] {
            let mut dec = Decoder::new(Limits::default());
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in stream.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(s) = dec.decode(&mut buf).unwrap() {
                    out.push(s);
                }
            }
            assert_eq!(out.len(), 2, "split {split}");
            assert_eq!(out[0][2].len(), 0x4000);
            assert_eq!(
                &out[1][..],
                &[Bytes::from_static(b"!done"), Bytes::from_static(b".tag=7")]
            );
            assert!(!dec.in_sentence());
        }
    }

    #[test]
    fn limits_are_enforced_before_buffering() {
        let limits = Limits {
            max_word: 1024,
            max_sentence: 1500,
            lenient_five_byte: false,
        };
        let mut dec = Decoder::new(limits);
        // Announces a 4 GiB word with only the prefix present: rejected at once.
        let mut buf = BytesMut::from(&hex("F0 FF FF FF FF")[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ProtocolError::WordTooLong {
                len: 0xFFFF_FFFF,
                max: 1024
            })
        );
        let mut dec = Decoder::new(limits);
        let mut stream = Vec::new();
        encode_word(&[b'a'; 1000], &mut stream);
        encode_word(&[b'b'; 1000], &mut stream);
        let mut buf = BytesMut::from(&stream[..]);
        assert_eq!(dec.decode(&mut buf), Err(ProtocolError::SentenceTooLong { max: 1500 }));
        let mut buf = BytesMut::from(&[0xF8u8][..]);
        assert_eq!(
            Decoder::default().decode(&mut buf),
            Err(ProtocolError::ControlByte(0xF8))
        );
    }

    proptest! {
        #[test]
        fn words_round_trip_at_any_chunking(
            words in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..3000), 1..6),
            chunk in 1usize..512,
        ) {
            let mut stream = Vec::new();
            encode_sentence(&words, &mut stream);
            let mut dec = Decoder::default();
            let mut buf = BytesMut::new();
            let mut got = None;
            for c in stream.chunks(chunk) {
                buf.extend_from_slice(c);
                if let Some(s) = dec.decode(&mut buf).unwrap() {
                    got = Some(s);
                }
            }
            let got: Vec<Vec<u8>> = got.unwrap().into_iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(got, words);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn lengths_round_trip(len in any::<u32>()) {
            let mut out = Vec::new();
            encode_length(len, &mut out);
            prop_assert_eq!(decode_length(&out, false).unwrap(), Some((len, out.len())));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            let mut dec = Decoder::new(Limits { max_word: 4096, max_sentence: 8192, lenient_five_byte: true });
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
        }
    }
}
