//! What a WebSocket transport hands its socket's task.

use bytes::Bytes;

pub enum Outgoing {
    /// UTF-8, checked by Python when the str was made.
    Text(Bytes),
    Binary(Bytes),
    Close {
        code: u16,
        reason: String,
    },
}
