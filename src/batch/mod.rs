//! Batches for accountants: intake formats, parsed as streams with bounded memory.

pub mod csv;
