//! The RouterOS API: wire codec and sentence model (sans-IO, shared by the client and the
//! simulator).

pub mod client;
pub mod codec;
pub mod sentence;
pub mod tls;

pub use codec::{Decoder, Limits, ProtocolError};
pub use sentence::{Kind, Sentence, query};
