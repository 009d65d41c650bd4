//! Polling: normalisation of RouterOS rows, one device's session, the breaker and the scheduler.

pub mod breaker;
pub mod collector;
pub mod normalise;
pub mod scheduler;
