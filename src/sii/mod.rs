//! The SII's protocol: envelopes, SOAP, authentication (seed → signed seed → token), the client
//! and an offline simulator that speaks the same wire formats.

pub mod api;
pub mod auth;
pub mod boleta;
pub mod client;
pub mod envelope;
pub mod rcv;
pub mod sim;
pub mod soap;
pub mod tokens;

/// The SII's identifier of an upload.
pub type TrackId = String;
