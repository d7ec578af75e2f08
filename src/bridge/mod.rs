//! The crossing between tokio threads and asyncio loop threads.

pub mod awaitable;
pub mod inbox;
pub mod loop_handle;
pub mod outbox;
