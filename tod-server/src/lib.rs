//! tod-server: ingest, storage, the domain engines and the REST API.
//!
//! What exists so far: the server's settings and their validation. Storage, auth and the API
//! groups are the next issues.

pub mod settings;
