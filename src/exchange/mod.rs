//! Intercambio between taxpayers: a supplier's file as the receiver reads it (`intake`), the
//! receiver's signed answers (`respuesta`), the RCV's actions, codes and 8-day window (`rcv`) and
//! the mail they travel in (`mail`). No I/O: bytes in, values and signed XML out.

pub mod intake;
pub mod mail;
pub mod rcv;
pub mod respuesta;
