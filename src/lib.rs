//! `turboasgi._core`: the Rust network side of turboasgi.

mod asgi;
mod bridge;
mod config;
mod errors;
mod server;
mod state;
mod sync;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<errors::ClientDisconnected>(),
    )?;
    m.add_class::<config::CoreConfig>()?;
    m.add_class::<config::tls::TlsConfig>()?;
    m.add_class::<server::ServerCore>()?;
    m.add_class::<asgi::dispatch::LoopHandle>()?;
    m.add_class::<asgi::http::HttpTransport>()?;
    m.add_class::<asgi::ws::WebSocketTransport>()?;
    m.add_class::<bridge::awaitable::Done>()?;
    Ok(())
}
