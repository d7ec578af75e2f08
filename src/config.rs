//! Settings of the network side, handed over once from Python's `Config`.

pub mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A trusted-proxy entry of `--forwarded-allow-ips`.
#[derive(Clone, Debug)]
pub enum TrustedProxy {
    Any,
    Net { addr: IpAddr, prefix: u8 },
    UnixSocket,
}

impl TrustedProxy {
    pub fn parse(text: &str) -> Option<TrustedProxy> {
        let text = text.trim();
        if text == "*" {
            return Some(TrustedProxy::Any);
        }
        if text == "unix:" {
            return Some(TrustedProxy::UnixSocket);
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = text.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(TrustedProxy::Net { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self, ip) {
            (TrustedProxy::Any, _) => true,
            (TrustedProxy::UnixSocket, _) => false,
            (
                TrustedProxy::Net {
                    addr: IpAddr::V4(net),
                    prefix,
                },
                IpAddr::V4(ip),
            ) => {
                let mask = if *prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                u32::from(*net) & mask == u32::from(*ip) & mask
            }
            (
                TrustedProxy::Net {
                    addr: IpAddr::V6(net),
                    prefix,
                },
                IpAddr::V6(ip),
            ) => {
                let mask = if *prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                u128::from(*net) & mask == u128::from(*ip) & mask
            }
            (TrustedProxy::Net { .. }, IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(&IpAddr::V4(v4))),
            (TrustedProxy::Net { .. }, IpAddr::V4(_)) => false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub root_path: String,
    pub server_header: bool,
    pub date_header: bool,
    pub default_headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout_keep_alive: Duration,
    pub limit_concurrency: Option<usize>,
    pub proxy_headers: bool,
    pub trusted_proxies: Vec<TrustedProxy>,
    pub max_header_bytes: usize,
    pub tokio_threads: usize,
    pub ws_enabled: bool,
    pub ws_max_size: usize,
    pub ws_ping_interval: Option<Duration>,
    pub ws_ping_timeout: Option<Duration>,
    pub ws_per_message_deflate: bool,
    /// `--metrics-port` is set: count what the Prometheus endpoint reports.
    pub metrics: bool,
    /// `--timeout-request-head`: 408 for a head not complete this long after its first byte.
    pub timeout_request_head: Option<Duration>,
    /// `--timeout-request-body`: how long in all a request body may keep the server waiting.
    pub timeout_request_body: Option<Duration>,
    /// `--limit-request-line`: longest request line (method, target, version) in bytes.
    pub limit_request_line: Option<usize>,
    /// `--limit-request-fields`: most header fields in a request head.
    pub limit_request_fields: Option<usize>,
    /// `--limit-request-field-size`: longest header field (`name: value`) in bytes.
    pub limit_request_field_size: Option<usize>,
    /// `--log-level trace`: connection made/lost lines go to the loop's logger (off: no cost).
    pub trace_connections: bool,
    /// Set when the listeners speak TLS (`--ssl-certfile`).
    pub tls: Option<Arc<tls::TlsSettings>>,
    pub http_protocols: HttpProtocols,
    pub h2: Http2Limits,
}

/// Which HTTP versions a connection may speak (`--http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpProtocols {
    /// HTTP/1.1, and HTTP/2 when the client starts with its preface (or negotiates `h2` by ALPN).
    Auto,
    Http1Only,
    Http2Only,
}

pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

impl HttpProtocols {
    /// The ALPN protocols a TLS listener offers, in the server's order of preference.
    pub fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            HttpProtocols::Auto => vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()],
            HttpProtocols::Http1Only => vec![ALPN_HTTP11.to_vec()],
            HttpProtocols::Http2Only => vec![ALPN_H2.to_vec()],
        }
    }

    pub fn parse(text: &str) -> Option<HttpProtocols> {
        match text {
            "auto" => Some(HttpProtocols::Auto),
            "1" => Some(HttpProtocols::Http1Only),
            "2" => Some(HttpProtocols::Http2Only),
            _ => None,
        }
    }
}

/// The HTTP/2 settings and limits (`--h2-*`); see docs/usage.md for why each default.
#[derive(Clone, Debug)]
pub struct Http2Limits {
    pub max_concurrent_streams: u32,
    pub max_header_list_size: u32,
    pub initial_stream_window_size: u32,
    pub initial_connection_window_size: u32,
    pub max_frame_size: u32,
    pub keep_alive_interval: Option<Duration>,
    pub keep_alive_timeout: Duration,
    pub max_pending_accept_reset_streams: usize,
    pub max_local_error_reset_streams: usize,
}

/// RFC 9113 6.5.2: a frame size outside 2^14..2^24-1 and a window above 2^31-1 are protocol errors.
const MIN_FRAME_SIZE: u32 = 1 << 14;
const MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;

impl Settings {
    pub fn is_trusted(&self, ip: Option<&IpAddr>) -> bool {
        match ip {
            Some(ip) => self.trusted_proxies.iter().any(|t| t.contains(ip)),
            None => self
                .trusted_proxies
                .iter()
                .any(|t| matches!(t, TrustedProxy::Any | TrustedProxy::UnixSocket)),
        }
    }
}

impl Http2Limits {
    /// The values the protocol itself cannot carry or that would make every connection fail.
    fn check(&self) -> Result<(), String> {
        if self.max_concurrent_streams == 0 {
            return Err("h2_max_concurrent_streams must be at least 1".into());
        }
        if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&self.max_frame_size) {
            return Err(format!(
                "h2_max_frame_size must be between {MIN_FRAME_SIZE} and {MAX_FRAME_SIZE}, got {}",
                self.max_frame_size
            ));
        }
        for (name, value) in [
            (
                "h2_initial_stream_window_size",
                self.initial_stream_window_size,
            ),
            (
                "h2_initial_connection_window_size",
                self.initial_connection_window_size,
            ),
        ] {
            if value == 0 || value > MAX_WINDOW_SIZE {
                return Err(format!(
                    "{name} must be between 1 and {MAX_WINDOW_SIZE}, got {value}"
                ));
            }
        }
        if self.max_header_list_size < 1024 {
            return Err(format!(
                "h2_max_header_list_size must be at least 1024, got {}",
                self.max_header_list_size
            ));
        }
        if self.max_pending_accept_reset_streams == 0 || self.max_local_error_reset_streams == 0 {
            return Err("h2 reset-stream limits must be at least 1".into());
        }
        Ok(())
    }
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct CoreConfig {
    pub settings: Settings,
}

#[pymethods]
impl CoreConfig {
    #[new]
    #[pyo3(signature = (*, root_path = String::new(), server_header = true, date_header = true,
        default_headers = Vec::new(), timeout_keep_alive = 5.0, limit_concurrency = None,
        proxy_headers = true, forwarded_allow_ips = vec!["127.0.0.1".to_string()],
        max_header_bytes = 65536, tokio_threads = 1, ws_enabled = true,
        ws_max_size = 16 * 1024 * 1024, ws_ping_interval = Some(20.0), ws_ping_timeout = Some(20.0),
        ws_per_message_deflate = true, metrics = false, timeout_request_head = None, timeout_request_body = None,
        limit_request_line = None, limit_request_fields = None, limit_request_field_size = None,
        trace_connections = false, tls = None, http_protocols = "auto".to_string(),
        h2_max_concurrent_streams = 100, h2_max_header_list_size = 65536,
        h2_initial_stream_window_size = 1024 * 1024, h2_initial_connection_window_size = 1024 * 1024,
        h2_max_frame_size = 16384, h2_keep_alive_interval = None, h2_keep_alive_timeout = 20.0,
        h2_max_pending_accept_reset_streams = 20, h2_max_local_error_reset_streams = 1024))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        root_path: String,
        server_header: bool,
        date_header: bool,
        default_headers: Vec<(Vec<u8>, Vec<u8>)>,
        timeout_keep_alive: f64,
        limit_concurrency: Option<usize>,
        proxy_headers: bool,
        forwarded_allow_ips: Vec<String>,
        max_header_bytes: usize,
        tokio_threads: usize,
        ws_enabled: bool,
        ws_max_size: usize,
        ws_ping_interval: Option<f64>,
        ws_ping_timeout: Option<f64>,
        ws_per_message_deflate: bool,
        metrics: bool,
        timeout_request_head: Option<f64>,
        timeout_request_body: Option<f64>,
        limit_request_line: Option<usize>,
        limit_request_fields: Option<usize>,
        limit_request_field_size: Option<usize>,
        trace_connections: bool,
        tls: Option<PyRef<'_, tls::TlsConfig>>,
        http_protocols: String,
        h2_max_concurrent_streams: u32,
        h2_max_header_list_size: u32,
        h2_initial_stream_window_size: u32,
        h2_initial_connection_window_size: u32,
        h2_max_frame_size: u32,
        h2_keep_alive_interval: Option<f64>,
        h2_keep_alive_timeout: f64,
        h2_max_pending_accept_reset_streams: usize,
        h2_max_local_error_reset_streams: usize,
    ) -> PyResult<Self> {
        let seconds = |name: &str, v: Option<f64>| -> PyResult<Option<Duration>> {
            match v {
                None => Ok(None),
                Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
                Some(_) => Err(PyValueError::new_err(format!(
                    "{name} must be a positive number of seconds or None"
                ))),
            }
        };
        let ws_ping_interval = seconds("ws_ping_interval", ws_ping_interval)?;
        let ws_ping_timeout = seconds("ws_ping_timeout", ws_ping_timeout)?;
        let timeout_request_head = seconds("timeout_request_head", timeout_request_head)?;
        let timeout_request_body = seconds("timeout_request_body", timeout_request_body)?;
        for (name, limit) in [
            ("limit_request_line", limit_request_line),
            ("limit_request_fields", limit_request_fields),
            ("limit_request_field_size", limit_request_field_size),
        ] {
            if limit == Some(0) {
                return Err(PyValueError::new_err(format!(
                    "{name} must be at least 1 (None for no limit)"
                )));
            }
        }
        let http_protocols = HttpProtocols::parse(&http_protocols).ok_or_else(|| {
            PyValueError::new_err(format!(
                "http_protocols must be 'auto', '1' or '2', got {http_protocols:?}"
            ))
        })?;
        let h2 = Http2Limits {
            max_concurrent_streams: h2_max_concurrent_streams,
            max_header_list_size: h2_max_header_list_size,
            initial_stream_window_size: h2_initial_stream_window_size,
            initial_connection_window_size: h2_initial_connection_window_size,
            max_frame_size: h2_max_frame_size,
            keep_alive_interval: seconds("h2_keep_alive_interval", h2_keep_alive_interval)?,
            keep_alive_timeout: seconds("h2_keep_alive_timeout", Some(h2_keep_alive_timeout))?
                .unwrap_or(Duration::from_secs(20)),
            max_pending_accept_reset_streams: h2_max_pending_accept_reset_streams,
            max_local_error_reset_streams: h2_max_local_error_reset_streams,
        };
        h2.check().map_err(PyValueError::new_err)?;
        let mut headers = Vec::with_capacity(default_headers.len());
        for (name, value) in default_headers {
            let n = HeaderName::from_bytes(&name).map_err(|_| {
                PyValueError::new_err(format!(
                    "default_headers: invalid header name {:?}",
                    String::from_utf8_lossy(&name)
                ))
            })?;
            let v = HeaderValue::from_maybe_shared(Bytes::from(value.clone())).map_err(|_| {
                PyValueError::new_err(format!(
                    "default_headers: invalid value for header {:?}",
                    n.as_str()
                ))
            })?;
            headers.push((n, v));
        }
        let mut trusted = Vec::new();
        for entry in forwarded_allow_ips.iter().flat_map(|s| s.split(',')) {
            if entry.trim().is_empty() {
                continue;
            }
            match TrustedProxy::parse(entry) {
                Some(t) => trusted.push(t),
                None => {
                    return Err(PyValueError::new_err(format!(
                        "forwarded_allow_ips: {entry:?} is not an IP address, network or '*'"
                    )))
                }
            }
        }
        if !timeout_keep_alive.is_finite() || timeout_keep_alive < 0.0 {
            return Err(PyValueError::new_err(
                "timeout_keep_alive must be a non-negative number of seconds",
            ));
        }
        if limit_concurrency == Some(0) {
            return Err(PyValueError::new_err(
                "limit_concurrency must be at least 1",
            ));
        }
        Ok(CoreConfig {
            settings: Settings {
                root_path,
                server_header,
                date_header,
                default_headers: headers,
                timeout_keep_alive: Duration::from_secs_f64(timeout_keep_alive),
                limit_concurrency,
                proxy_headers,
                trusted_proxies: trusted,
                max_header_bytes: max_header_bytes.max(8192),
                tokio_threads: tokio_threads.max(1),
                ws_enabled,
                ws_max_size: ws_max_size.max(1),
                ws_ping_interval,
                ws_ping_timeout,
                ws_per_message_deflate,
                metrics,
                timeout_request_head,
                timeout_request_body,
                limit_request_line,
                limit_request_fields,
                limit_request_field_size,
                trace_connections,
                tls: tls.map(|t| t.settings.offering(http_protocols.alpn())),
                http_protocols,
                h2,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_networks_match() {
        let net = TrustedProxy::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(&"10.1.2.3".parse().unwrap()));
        assert!(!net.contains(&"11.1.2.3".parse().unwrap()));
        assert!(net.contains(&"::ffff:10.0.0.1".parse().unwrap()));
        let one = TrustedProxy::parse("127.0.0.1").unwrap();
        assert!(one.contains(&"127.0.0.1".parse().unwrap()));
        assert!(!one.contains(&"127.0.0.2".parse().unwrap()));
        assert!(TrustedProxy::parse("*")
            .unwrap()
            .contains(&"::1".parse().unwrap()));
        assert!(TrustedProxy::parse("nonsense").is_none());
        assert!(TrustedProxy::parse("10.0.0.0/40").is_none());
    }
}
