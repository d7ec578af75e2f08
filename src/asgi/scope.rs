//! Builds the HTTP scope dict on the loop thread, from interned keys (spec H1).

use std::borrow::Cow;

use http::{header, Method, Version};
use percent_encoding::percent_decode;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::config::Settings;
use crate::state::connection::ConnInfo;

/// 2.4: send() after disconnect raises OSError; 2.5: websocket.disconnect carries the close reason.
pub const SPEC_VERSION: &str = "2.5";

/// The method as a Python str, interned for the common ones.
fn method_str<'py>(py: Python<'py>, method: &Method) -> Bound<'py, PyString> {
    match *method {
        Method::GET => intern!(py, "GET").clone(),
        Method::POST => intern!(py, "POST").clone(),
        Method::HEAD => intern!(py, "HEAD").clone(),
        Method::PUT => intern!(py, "PUT").clone(),
        Method::DELETE => intern!(py, "DELETE").clone(),
        Method::PATCH => intern!(py, "PATCH").clone(),
        Method::OPTIONS => intern!(py, "OPTIONS").clone(),
        _ => PyString::new(py, method.as_str()),
    }
}

fn scheme_str<'py>(py: Python<'py>, scheme: &str) -> Bound<'py, PyString> {
    match scheme {
        "http" => intern!(py, "http").clone(),
        "https" => intern!(py, "https").clone(),
        "ws" => intern!(py, "ws").clone(),
        "wss" => intern!(py, "wss").clone(),
        other => PyString::new(py, other),
    }
}

fn http_version<'py>(py: Python<'py>, version: Version) -> &'py Bound<'py, PyString> {
    match version {
        Version::HTTP_10 | Version::HTTP_09 => intern!(py, "1.0"),
        Version::HTTP_2 => intern!(py, "2"),
        _ => intern!(py, "1.1"),
    }
}

/// The scheme a trusted proxy reports in `X-Forwarded-Proto` (its last value), in the HTTP form:
/// `ws`/`wss` name the same transports as `http`/`https`; the scope kind picks the spelling.
fn forwarded_scheme(parts: &http::request::Parts) -> Option<&'static str> {
    let value = parts
        .headers
        .get_all("x-forwarded-proto")
        .iter()
        .next_back()?;
    let proto = value.to_str().ok()?.rsplit(',').next()?.trim();
    if proto.eq_ignore_ascii_case("https") || proto.eq_ignore_ascii_case("wss") {
        Some("https")
    } else if proto.eq_ignore_ascii_case("http") || proto.eq_ignore_ascii_case("ws") {
        Some("http")
    } else {
        None
    }
}

/// One `X-Forwarded-For` entry as `(host, port)`: `203.0.113.7:4444`, `[2001:db8::1]:4444`, or a bare
/// address (port 0). Anything else is kept whole with port 0, so that a trust check never sees a
/// host that was cut out of a malformed value.
fn split_host_port(entry: &str) -> (&str, u16) {
    if let Some(rest) = entry.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return (entry, 0);
        };
        return match after.strip_prefix(':') {
            None if after.is_empty() => (host, 0),
            Some(port) => (host, port.parse().unwrap_or(0)),
            None => (entry, 0),
        };
    }
    match entry.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(port) => (host, port),
            Err(_) => (entry, 0),
        },
        _ => (entry, 0),
    }
}

/// `(scheme, client)` after `X-Forwarded-Proto`/`X-Forwarded-For` from a trusted peer.
fn proxied<'a>(
    parts: &'a http::request::Parts,
    conn: &'a ConnInfo,
    settings: &Settings,
) -> (&'static str, Option<(Cow<'a, str>, u16)>) {
    let direct = conn
        .client
        .as_ref()
        .map(|(h, p)| (Cow::Borrowed(h.as_str()), *p));
    let direct_scheme = if conn.tls.is_some() { "https" } else { "http" };
    if !settings.proxy_headers || !settings.is_trusted(conn.client_ip.as_ref()) {
        return (direct_scheme, direct);
    }
    let scheme = forwarded_scheme(parts).unwrap_or(direct_scheme);
    // Repeated X-Forwarded-For fields are one comma-separated list, in order (RFC 9110 5.3).
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let Some(first) = forwarded.first() else {
        return (scheme, direct);
    };
    // Walk right to left: the first address not of a trusted proxy is the client; when every hop is
    // trusted, the leftmost one.
    let mut chosen = split_host_port(first);
    for hop in forwarded.iter().rev() {
        chosen = split_host_port(hop);
        match chosen.0.parse::<std::net::IpAddr>() {
            Ok(ip) if settings.is_trusted(Some(&ip)) => continue,
            _ => break,
        }
    }
    (scheme, Some((Cow::Owned(chosen.0.to_string()), chosen.1)))
}

fn joined_cookies(headers: &http::HeaderMap) -> Vec<u8> {
    let mut joined = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    joined
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Http,
    WebSocket,
}

/// `Sec-WebSocket-Protocol` values, comma-split and stripped (spec W1).
fn subprotocols<'py>(
    py: Python<'py>,
    parts: &http::request::Parts,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for value in parts.headers.get_all("sec-websocket-protocol") {
        if let Ok(text) = value.to_str() {
            for p in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                list.append(p)?;
            }
        }
    }
    Ok(list)
}

/// A scope's keys in the order they reach the app (the order uvicorn's scopes have): the keys
/// that differ by kind, then those every scope has.
const HTTP_FIRST_KEYS: [&str; 3] = ["type", "method", "scheme"];
const WEBSOCKET_FIRST_KEYS: [&str; 3] = ["type", "scheme", "subprotocols"];
const SHARED_KEYS: [&str; 11] = [
    "asgi",
    "http_version",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
    "state",
    "extensions",
];

/// One scope per kind with every key in place (values None), owned by one loop: a scope copied
/// from it starts at its final size (one copy of the key table), where 14 keys inserted into an
/// empty dict made it grow twice.
pub struct ScopeTemplates {
    http: Py<PyDict>,
    websocket: Py<PyDict>,
}

impl ScopeTemplates {
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        let template = |first_keys: &[&str]| -> PyResult<Py<PyDict>> {
            let dict = PyDict::new(py);
            for key in first_keys.iter().chain(&SHARED_KEYS) {
                dict.set_item(PyString::intern(py, key), py.None())?;
            }
            Ok(dict.unbind())
        };
        Ok(ScopeTemplates {
            http: template(&HTTP_FIRST_KEYS)?,
            websocket: template(&WEBSOCKET_FIRST_KEYS)?,
        })
    }

    fn copy<'py>(&self, py: Python<'py>, kind: ScopeKind) -> PyResult<Bound<'py, PyDict>> {
        match kind {
            ScopeKind::Http => self.http.bind(py).copy(),
            ScopeKind::WebSocket => self.websocket.bind(py).copy(),
        }
    }
}

pub fn build_scope<'py>(
    py: Python<'py>,
    kind: ScopeKind,
    parts: &http::request::Parts,
    conn: &ConnInfo,
    settings: &Settings,
    state: &Bound<'py, PyDict>,
    templates: &ScopeTemplates,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = templates.copy(py, kind)?;
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), intern!(py, SPEC_VERSION))?;

    let uri = &parts.uri;
    let raw_path: &[u8] = if parts.method == Method::CONNECT {
        uri.authority()
            .map(|a| a.as_str().as_bytes())
            .unwrap_or(b"")
    } else if uri == "*" {
        b"*"
    } else {
        uri.path().as_bytes()
    };
    let decoded = percent_decode(raw_path).decode_utf8_lossy();
    let path = if settings.root_path.is_empty() {
        PyString::new(py, &decoded)
    } else {
        PyString::new(py, &format!("{}{}", settings.root_path, decoded))
    };
    let query = uri.query().unwrap_or("").as_bytes();

    let headers = PyList::empty(py);
    let http2 = parts.version == Version::HTTP_2;
    if http2 && !parts.headers.contains_key(header::HOST) {
        // spec H1 / RFC 9113 8.3.1: `:authority` is the request's Host; apps and frameworks look
        // for `host` in the headers, so it goes in front of them (pseudo-headers never appear).
        if let Some(authority) = uri.authority() {
            headers.append(PyTuple::new(
                py,
                [
                    PyBytes::new(py, b"host"),
                    PyBytes::new(py, authority.as_str().as_bytes()),
                ],
            )?)?;
        }
    }
    let mut cookies_joined = false;
    for (name, value) in parts.headers.iter() {
        if http2 && name == header::COOKIE {
            // RFC 9113 8.2.3: HTTP/2 clients may split `cookie` into one field per pair; the app
            // gets the single HTTP/1.1 field, rejoined with "; ".
            if !cookies_joined {
                cookies_joined = true;
                let joined = joined_cookies(&parts.headers);
                headers.append(PyTuple::new(
                    py,
                    [PyBytes::new(py, b"cookie"), PyBytes::new(py, &joined)],
                )?)?;
            }
            continue;
        }
        let pair = PyTuple::new(
            py,
            [
                PyBytes::new(py, name.as_str().as_bytes()),
                PyBytes::new(py, value.as_bytes()),
            ],
        )?;
        headers.append(pair)?;
    }

    let (scheme, client) = proxied(parts, conn, settings);
    let extensions = PyDict::new(py);
    match kind {
        ScopeKind::Http => {
            scope.set_item(intern!(py, "type"), intern!(py, "http"))?;
            scope.set_item(intern!(py, "method"), method_str(py, &parts.method))?;
            scope.set_item(intern!(py, "scheme"), scheme_str(py, scheme))?;
            // spec G8: files named by `http.response.pathsend` are sent by `HttpTransport`
            extensions.set_item(intern!(py, "http.response.pathsend"), PyDict::new(py))?;
            if response_trailers_possible(parts) {
                extensions.set_item(intern!(py, "http.response.trailers"), PyDict::new(py))?;
            }
        }
        ScopeKind::WebSocket => {
            scope.set_item(intern!(py, "type"), intern!(py, "websocket"))?;
            let ws_scheme = if scheme == "https" { "wss" } else { "ws" };
            scope.set_item(intern!(py, "scheme"), scheme_str(py, ws_scheme))?;
            scope.set_item(intern!(py, "subprotocols"), subprotocols(py, parts)?)?;
            extensions.set_item(intern!(py, "websocket.http.response"), PyDict::new(py))?;
        }
    }
    if let Some(tls) = conn.tls_extension(py)? {
        extensions.set_item(intern!(py, "tls"), tls)?;
    }
    scope.set_item(intern!(py, "asgi"), asgi)?;
    scope.set_item(intern!(py, "http_version"), http_version(py, parts.version))?;
    scope.set_item(intern!(py, "path"), path)?;
    scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, raw_path))?;
    scope.set_item(intern!(py, "query_string"), PyBytes::new(py, query))?;
    if settings.root_path.is_empty() {
        scope.set_item(intern!(py, "root_path"), intern!(py, ""))?;
    } else {
        scope.set_item(intern!(py, "root_path"), settings.root_path.as_str())?;
    }
    scope.set_item(intern!(py, "headers"), headers)?;
    match client {
        Some((Cow::Borrowed(_), _)) => {
            scope.set_item(intern!(py, "client"), conn.client_tuple(py)?)?
        }
        Some((host, port)) => scope.set_item(intern!(py, "client"), (host.as_ref(), port))?,
        None => scope.set_item(intern!(py, "client"), py.None())?,
    }
    scope.set_item(intern!(py, "server"), conn.server_tuple(py)?)?;
    scope.set_item(intern!(py, "state"), state.copy()?)?;
    if extensions.is_empty() {
        // spec G8: only what is really handled is advertised
        scope.del_item(intern!(py, "extensions"))?;
    } else {
        scope.set_item(intern!(py, "extensions"), extensions)?;
    }
    Ok(scope)
}

/// Whether trailers can reach this client: always on HTTP/2; on HTTP/1.1 only in a chunked body
/// to a client that said `TE: trailers` (hyper drops them otherwise, with the same token check).
pub fn response_trailers_possible(parts: &http::request::Parts) -> bool {
    match parts.version {
        Version::HTTP_2 => true,
        Version::HTTP_11 => parts.headers.get_all(header::TE).iter().any(|value| {
            value.to_str().is_ok_and(|line| {
                line.split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("trailers"))
            })
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{response_trailers_possible, split_host_port};

    fn request(version: http::Version, te: &[&str]) -> http::request::Parts {
        let mut builder = http::Request::builder().version(version);
        for value in te {
            builder = builder.header(http::header::TE, *value);
        }
        builder
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn trailers_only_where_hyper_sends_them() {
        use http::Version;
        assert!(response_trailers_possible(&request(Version::HTTP_2, &[])));
        assert!(response_trailers_possible(&request(
            Version::HTTP_11,
            &["trailers"]
        )));
        assert!(response_trailers_possible(&request(
            Version::HTTP_11,
            &["gzip, Trailers"]
        )));
        assert!(response_trailers_possible(&request(
            Version::HTTP_11,
            &["gzip", "trailers"]
        )));
        assert!(!response_trailers_possible(&request(Version::HTTP_11, &[])));
        assert!(!response_trailers_possible(&request(
            Version::HTTP_11,
            &["gzip"]
        )));
        assert!(!response_trailers_possible(&request(
            Version::HTTP_11,
            &["trailers;q=1"]
        )));
        assert!(!response_trailers_possible(&request(
            Version::HTTP_10,
            &["trailers"]
        )));
    }

    #[test]
    fn forwarded_entries_with_and_without_port() {
        assert_eq!(split_host_port("203.0.113.7:4444"), ("203.0.113.7", 4444));
        assert_eq!(split_host_port("203.0.113.7"), ("203.0.113.7", 0));
        assert_eq!(split_host_port("[2001:db8::7]:4444"), ("2001:db8::7", 4444));
        assert_eq!(split_host_port("[2001:db8::7]"), ("2001:db8::7", 0));
        assert_eq!(split_host_port("2001:db8::7"), ("2001:db8::7", 0));
    }

    #[test]
    fn malformed_entries_are_kept_whole() {
        // never a host cut out of a malformed value, which a trust check could then accept
        assert_eq!(split_host_port("127.0.0.1:x"), ("127.0.0.1:x", 0));
        assert_eq!(split_host_port("[::1"), ("[::1", 0));
        assert_eq!(split_host_port("[::1]x"), ("[::1]x", 0));
        assert_eq!(split_host_port("unknown"), ("unknown", 0));
        assert_eq!(split_host_port("[::1]:99999"), ("::1", 0));
    }
}
