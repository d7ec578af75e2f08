//! ASGI transports: scope building, receive/send for HTTP and WebSockets, and the loop-side
//! dispatcher that starts the app's Tasks. Built on the bridge and the shared state; knows no
//! listener, TLS or protocol framing.

pub mod dispatch;
pub mod http;
pub mod message;
pub mod pathsend;
pub mod scope;
pub mod ws;
