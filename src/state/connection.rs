//! One client connection as every layer sees it: the peer and local addresses, its requests in
//! flight, and the Python values built once for all its scopes.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tokio::sync::Notify;

use super::cert_name::subject_rfc4514;
use crate::config::tls::{pem_certificate, TlsSettings};

pub struct ConnInfo {
    pub client: Option<(String, u16)>,
    pub client_ip: Option<IpAddr>,
    /// `(host, Some(port))` for TCP, `(unix_path, None)` for a unix socket.
    pub server: Option<(String, Option<u16>)>,
    in_flight: AtomicUsize,
    requests_seen: AtomicU64,
    /// Handed over to a WebSocket: the HTTP side's end is not the connection's end.
    upgraded: AtomicBool,
    activity: Notify,
    /// `scope["client"]` / `scope["server"]` built once per connection, on its loop thread.
    client_py: OnceLock<Py<PyAny>>,
    server_py: OnceLock<Py<PyAny>>,
    /// Set on TLS connections once the handshake finished.
    pub tls: Option<TlsInfo>,
    tls_py: OnceLock<Py<PyAny>>,
}

/// What the handshake settled, for the ASGI `tls` scope extension.
pub struct TlsInfo {
    /// Wire number of the protocol version (0x0303 TLS 1.2, 0x0304 TLS 1.3).
    pub version: u16,
    /// IANA id of the negotiated cipher suite.
    pub cipher_suite: u16,
    /// The client's certificates, leaf first, as DER (empty without a client certificate).
    pub client_chain: Vec<Vec<u8>>,
    pub settings: Arc<TlsSettings>,
}

impl ConnInfo {
    pub fn new(
        client: Option<(String, u16)>,
        client_ip: Option<IpAddr>,
        server: Option<(String, Option<u16>)>,
    ) -> Self {
        ConnInfo {
            client,
            client_ip,
            server,
            in_flight: AtomicUsize::new(0),
            requests_seen: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            activity: Notify::new(),
            client_py: OnceLock::new(),
            server_py: OnceLock::new(),
            tls: None,
            tls_py: OnceLock::new(),
        }
    }

    /// `"127.0.0.1:54321 - "` as uvicorn starts its per-connection lines; empty without a peer
    /// address (unix sockets).
    pub fn log_prefix(&self) -> String {
        match &self.client {
            Some((host, port)) => format!("{host}:{port} - "),
            None => String::new(),
        }
    }

    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    pub fn with_tls(mut self, tls: TlsInfo) -> Self {
        self.tls = Some(tls);
        self
    }

    /// `scope["extensions"]["tls"]`: built once per connection, a fresh copy per scope so that one
    /// request's app cannot change what the next one sees. None on plain connections.
    pub fn tls_extension<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let built = built_once(&self.tls_py, py, || {
            let d = PyDict::new(py);
            d.set_item(
                intern!(py, "server_cert"),
                tls.settings.server_cert_pem.as_str(),
            )?;
            // a tuple: the per-scope copy of the dict is shallow, and the chain must not be mutable
            let chain = PyTuple::new(py, tls.client_chain.iter().map(|der| pem_certificate(der)))?;
            let name = tls
                .client_chain
                .first()
                .and_then(|der| subject_rfc4514(der));
            d.set_item(intern!(py, "client_cert_chain"), chain)?;
            d.set_item(intern!(py, "client_cert_name"), name)?;
            d.set_item(intern!(py, "client_cert_error"), py.None())?;
            d.set_item(intern!(py, "tls_version"), tls.version)?;
            d.set_item(intern!(py, "cipher_suite"), tls.cipher_suite)?;
            Ok(d.into_any())
        })?;
        Ok(Some(built.cast_into::<PyDict>()?.copy()?))
    }

    pub fn client_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        built_once(&self.client_py, py, || {
            Ok(match &self.client {
                Some((host, port)) => (host.as_str(), *port).into_pyobject(py)?.into_any(),
                None => py.None().into_bound(py),
            })
        })
    }

    pub fn server_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        built_once(&self.server_py, py, || {
            Ok(match &self.server {
                Some((host, Some(port))) => (host.as_str(), *port).into_pyobject(py)?.into_any(),
                Some((path, None)) => (path.as_str(), py.None()).into_pyobject(py)?.into_any(),
                None => py.None().into_bound(py),
            })
        })
    }

    pub fn request_started(&self) {
        self.requests_seen.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.activity.notify_waiters();
    }

    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.activity.notify_waiters();
    }

    /// How many requests the connection has started so far.
    pub fn requests_seen(&self) -> u64 {
        self.requests_seen.load(Ordering::Acquire)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether the connection ever started a request or has one in flight now.
    pub fn has_requests(&self) -> bool {
        self.requests_seen.load(Ordering::Acquire) > 0 || self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Resolves at the next start or end of a request on this connection.
    pub async fn next_activity(&self) {
        self.activity.notified().await;
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let notified = self.activity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) > 0 {
                notified.await;
                continue;
            }
            tokio::select! {
                // A request that started as the timer ran out wins: the connection is not idle.
                biased;
                _ = notified => continue,
                _ = tokio::time::sleep(timeout) => {
                    if self.in_flight.load(Ordering::Acquire) == 0 {
                        return;
                    }
                }
            }
        }
    }
}

/// A Python value of the connection, built on first use and shared by all its scopes.
fn built_once<'py>(
    cell: &OnceLock<Py<PyAny>>,
    py: Python<'py>,
    build: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(value) = cell.get() {
        return Ok(value.bind(py).clone());
    }
    let value = build()?;
    Ok(cell.get_or_init(|| value.unbind()).bind(py).clone())
}
