//! The sentence model: what a list of words means.
//!
//! The first word is a command (`/interface/print`) or a reply kind (`!re`, `!done`, `!trap`,
//! `!fatal`, `!empty`; anything else starting with `!` is kept as unknown). The rest are, in
//! order: `.tag=T`, attribute words `=name=value` (split at the second `=`, so values may contain
//! `=`; API attributes such as `.id` and `.proplist` are attributes whose name starts with `.`),
//! query words `?...`, and bare words (such as the reason after `!fatal`), all kept.

use std::borrow::Cow;

use bytes::Bytes;

use super::codec::{ProtocolError, encode_sentence};

/// The first word of a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A command path (client to router).
    Command(String),
    /// `!re`: one data row.
    Re,
    /// `!done`: the command finished.
    Done,
    /// `!trap`: an error; `!done` follows.
    Trap,
    /// `!fatal`: the session is ending.
    Fatal,
    /// `!empty` (RouterOS ≥ 7.18): no data; `!done` follows.
    Empty,
    /// Any other reply word, kept verbatim.
    Unknown(String),
}

impl Kind {
    /// The word on the wire.
    pub fn as_word(&self) -> &str {
        match self {
            Self::Command(c) => c,
            Self::Re => "!re",
            Self::Done => "!done",
            Self::Trap => "!trap",
            Self::Fatal => "!fatal",
            Self::Empty => "!empty",
            Self::Unknown(u) => u,
        }
    }

    fn parse(word: &[u8]) -> Result<Self, ProtocolError> {
        let w = decode_text(word);
        Ok(match w.as_ref() {
            "!re" => Self::Re,
            "!done" => Self::Done,
            "!trap" => Self::Trap,
            "!fatal" => Self::Fatal,
            "!empty" => Self::Empty,
            s if s.starts_with('!') => Self::Unknown(s.to_owned()),
            s if s.starts_with('/') => Self::Command(s.to_owned()),
            s => {
                return Err(ProtocolError::Malformed(format!(
                    "first word {s:?} is neither a command nor a reply"
                )));
            }
        })
    }
}

/// Decodes a RouterOS value: UTF-8, or Latin-1 for the legacy single-byte charset of v6.
pub fn decode_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// One sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// What it is.
    pub kind: Kind,
    /// `.tag`, if any.
    pub tag: Option<String>,
    /// `=name=value` words in order (API attributes included, names starting with `.`).
    pub attrs: Vec<(String, Bytes)>,
    /// `?` query words in order (without the `?`).
    pub queries: Vec<String>,
    /// Bare words (e.g. the reason of `!fatal`).
    pub extra: Vec<Bytes>,
}

impl Sentence {
    /// A command sentence.
    pub fn command(path: impl Into<String>) -> Self {
        Self::new(Kind::Command(path.into()))
    }

    /// A sentence of the given kind, with nothing else.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            tag: None,
            attrs: Vec::new(),
            queries: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Adds `=name=value`.
    pub fn attr(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.attrs
            .push((name.to_owned(), Bytes::copy_from_slice(value.as_ref())));
        self
    }

    /// Adds `=.proplist=a,b,c`.
    pub fn proplist(self, props: &[&str]) -> Self {
        let list = props.join(",");
        self.attr(".proplist", list)
    }

    /// Adds a query word (see [`query`]).
    pub fn query(mut self, q: impl Into<String>) -> Self {
        self.queries.push(q.into());
        self
    }

    /// Sets `.tag`.
    pub fn tagged(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// The raw value of an attribute.
    pub fn get_raw(&self, name: &str) -> Option<&Bytes> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The value of an attribute as text.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get_raw(name).map(|v| decode_text(v))
    }

    /// `.id` of a row.
    pub fn id(&self) -> Option<Cow<'_, str>> {
        self.get(".id")
    }

    /// The `.proplist` requested by a command, split.
    pub fn requested_props(&self) -> Option<Vec<String>> {
        self.get(".proplist")
            .map(|p| p.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    /// Parses raw words.
    pub fn from_words(words: &[Bytes]) -> Result<Self, ProtocolError> {
        let first = words
            .first()
            .ok_or_else(|| ProtocolError::Malformed("empty sentence".into()))?;
        let mut s = Self::new(Kind::parse(first)?);
        for w in &words[1..] {
            if let Some(tag) = w.strip_prefix(b".tag=") {
                s.tag = Some(decode_text(tag).into_owned());
            } else if let Some(rest) = w.strip_prefix(b"=") {
                // Split at the second '=' of the word: the first '=' after the name.
                match rest.iter().position(|&b| b == b'=') {
                    Some(i) => {
                        let name = decode_text(&rest[..i]).into_owned();
                        s.attrs.push((name, w.slice(1 + i + 1..)));
                    }
                    None => s.attrs.push((decode_text(rest).into_owned(), Bytes::new())),
                }
            } else if let Some(q) = w.strip_prefix(b"?") {
                s.queries.push(decode_text(q).into_owned());
            } else {
                s.extra.push(w.clone());
            }
        }
        Ok(s)
    }

    /// The words, in the canonical order: kind, attributes, queries, extra, tag.
    pub fn to_words(&self) -> Vec<Vec<u8>> {
        let mut words = Vec::with_capacity(2 + self.attrs.len() + self.queries.len() + self.extra.len());
        words.push(self.kind.as_word().as_bytes().to_vec());
        for (k, v) in &self.attrs {
            let mut w = Vec::with_capacity(k.len() + v.len() + 2);
            w.push(b'=');
            w.extend_from_slice(k.as_bytes());
            w.push(b'=');
            w.extend_from_slice(v);
            words.push(w);
        }
        for q in &self.queries {
            words.push(format!("?{q}").into_bytes());
        }
        for e in &self.extra {
            words.push(e.to_vec());
        }
        if let Some(t) = &self.tag {
            words.push(format!(".tag={t}").into_bytes());
        }
        words
    }

    /// Appends the encoded sentence to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_sentence(&self.to_words(), out);
    }
}

/// Query words for `print` (evaluated by the router as a stack machine).
pub mod query {
    /// `?name=value`: property equals value.
    pub fn eq(name: &str, value: &str) -> String {
        format!("{name}={value}")
    }
    /// `?name`: item has the property.
    pub fn has(name: &str) -> String {
        name.to_owned()
    }
    /// `?-name`: item lacks the property.
    pub fn lacks(name: &str) -> String {
        format!("-{name}")
    }
    /// `?<name=value`.
    pub fn lt(name: &str, value: &str) -> String {
        format!("<{name}={value}")
    }
    /// `?>name=value`.
    pub fn gt(name: &str, value: &str) -> String {
        format!(">{name}={value}")
    }
    /// `?#ops`: stack operators (`!`, `&`, `|`, `.`).
    pub fn op(ops: &str) -> String {
        format!("#{ops}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routeros::codec::Decoder;
    use bytes::BytesMut;

    fn words(ws: &[&[u8]]) -> Vec<Bytes> {
        ws.iter().map(|w| Bytes::copy_from_slice(w)).collect()
    }

    #[test]
    fn reply_kinds_attributes_tags_and_bare_words() {
        let s = Sentence::from_words(&words(&[
            b"!re",
            b"=.id=*1A",
            b"=comment=a=b=c",
            b"=disabled=",
            b".tag=t3",
        ]))
        .unwrap();
        assert_eq!(s.kind, Kind::Re);
        assert_eq!(s.tag.as_deref(), Some("t3"));
        assert_eq!(s.id().as_deref(), Some("*1A"));
        assert_eq!(
            s.get("comment").as_deref(),
            Some("a=b=c"),
            "split at the second '=' only"
        );
        assert_eq!(s.get("disabled").as_deref(), Some(""));
        let f = Sentence::from_words(&words(&[b"!fatal", b"not logged in"])).unwrap();
        assert_eq!(f.kind, Kind::Fatal);
        assert_eq!(&f.extra[0][..], b"not logged in");
        assert_eq!(Sentence::from_words(&words(&[b"!empty"])).unwrap().kind, Kind::Empty);
        assert_eq!(
            Sentence::from_words(&words(&[b"!weird"])).unwrap().kind,
            Kind::Unknown("!weird".into())
        );
        assert!(Sentence::from_words(&words(&[b"hello"])).is_err());
        assert!(Sentence::from_words(&[]).is_err());
    }

    #[test]
    fn tag_may_come_anywhere_and_latin1_survives() {
        let s = Sentence::from_words(&words(&[b"!done", b".tag=9", b"=ret=*5", b"=comment=caf\xe9"])).unwrap();
        assert_eq!(s.tag.as_deref(), Some("9"));
        assert_eq!(s.get("ret").as_deref(), Some("*5"));
        assert_eq!(s.get("comment").as_deref(), Some("café"));
        assert_eq!(&s.get_raw("comment").unwrap()[..], b"caf\xe9");
    }

    #[test]
    fn commands_round_trip_through_the_codec() {
        let cmd = Sentence::command("/interface/print")
            .proplist(&["name", "mac-address"])
            .query(query::eq("type", "ether"))
            .query(query::eq("type", "vlan"))
            .query(query::op("|"))
            .tagged("7");
        let mut bytes = Vec::new();
        cmd.encode(&mut bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        let back = Sentence::from_words(&Decoder::default().decode(&mut buf).unwrap().unwrap()).unwrap();
        assert_eq!(back, cmd);
        assert_eq!(back.requested_props().unwrap(), vec!["name", "mac-address"]);
        assert_eq!(back.queries, vec!["type=ether", "type=vlan", "#|"]);
    }

    #[test]
    fn reference_tagged_print_bytes() {
        let mut bytes = Vec::new();
        Sentence::command("/system/resource/print")
            .tagged("7")
            .encode(&mut bytes);
        assert_eq!(bytes[0], 0x16);
        assert_eq!(&bytes[1..23], b"/system/resource/print");
        assert_eq!(&bytes[23..], b"\x06.tag=7\x00");
    }
}
