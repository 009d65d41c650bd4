//! The RouterOS API: wire codec and sentence model (sans-IO, shared by the client and the
//! simulator).

pub mod codec;
pub mod sentence;

pub use codec::{Decoder, Limits, ProtocolError};
pub use sentence::{Kind, Sentence, query};
