//! The SII's protocol artefacts. `envelope`: EnvioDTE / EnvioBOLETA with their Carátula.

pub mod envelope;
