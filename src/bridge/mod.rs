//! The crossing between tokio threads and asyncio loop threads, generic over what it carries: an
//! inbox per loop (tokio → asyncio), an outbox per loop (asyncio → tokio) and completed awaitables.

pub mod awaitable;
pub mod inbox;
pub mod outbox;
