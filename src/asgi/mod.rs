//! The ASGI side of a request: scope building, receive/send, response bodies.

pub mod body;
pub mod http;
pub mod message;
pub mod scope;
pub mod ws;
