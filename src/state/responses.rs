//! Responses the server writes itself, never seen by the app, and the default headers every
//! response carries.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use super::body::ResponseBody;
use crate::config::Settings;

thread_local! {
    /// The `date` value of the current second, per thread (RFC 9110 IMF-fixdate).
    static DATE: RefCell<(u64, HeaderValue)> = const { RefCell::new((0, HeaderValue::from_static(""))) };
}

fn current_date() -> HeaderValue {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            if let Ok(value) = HeaderValue::from_str(&text) {
                *cached = (second, value);
            }
        }
        cached.1.clone()
    })
}

/// A header map that starts with the `date`, `server` and `--header` defaults (uvicorn's order) the
/// app does not set itself (`app_sets`), so the app's own value wins and none is ever duplicated.
pub fn default_headers(
    app_sets: impl Fn(&HeaderName) -> bool,
    capacity: usize,
    settings: &Settings,
) -> HeaderMap {
    let mut merged = HeaderMap::with_capacity(capacity + settings.default_headers.len() + 2);
    if settings.date_header && !app_sets(&header::DATE) {
        merged.insert(header::DATE, current_date());
    }
    if settings.server_header && !app_sets(&header::SERVER) {
        merged.insert(header::SERVER, HeaderValue::from_static("turboasgi"));
    }
    for (name, value) in &settings.default_headers {
        if !app_sets(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    merged
}

/// Puts the defaults in front of a header map that is already built (cold paths).
pub fn apply_default_headers(headers: &mut HeaderMap, settings: &Settings) {
    let mut merged = default_headers(|name| headers.contains_key(name), headers.len(), settings);
    if merged.is_empty() {
        return;
    }
    let mut last_name = None;
    for (name, value) in std::mem::take(headers) {
        if let Some(n) = name {
            last_name = Some(n);
        }
        if let Some(n) = &last_name {
            merged.append(n.clone(), value);
        }
    }
    *headers = merged;
}

fn plain(settings: &Settings, status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(Bytes::from_static(
        text.as_bytes(),
    ))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    apply_default_headers(headers, settings);
    response
}

pub fn bad_request(settings: &Settings) -> Response<ResponseBody> {
    plain(
        settings,
        StatusCode::BAD_REQUEST,
        "Invalid HTTP request received.",
    )
}

pub fn internal_error(settings: &Settings) -> Response<ResponseBody> {
    plain(
        settings,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error",
    )
}

pub fn service_unavailable(settings: &Settings) -> Response<ResponseBody> {
    plain(
        settings,
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable",
    )
}

/// `414 URI Too Long` or `431 Request Header Fields Too Large` for a head over a configured limit.
pub fn over_limit(settings: &Settings, status: StatusCode) -> Response<ResponseBody> {
    let text = if status == StatusCode::URI_TOO_LONG {
        "Request line too long."
    } else {
        "Request header field too large."
    };
    plain(settings, status, text)
}

pub fn request_timeout(settings: &Settings) -> Response<ResponseBody> {
    plain(settings, StatusCode::REQUEST_TIMEOUT, "Request Timeout")
}

/// A WebSocket closed before accept (spec W6): empty body, as uvicorn sends it.
pub fn forbidden(settings: &Settings) -> Response<ResponseBody> {
    plain(settings, StatusCode::FORBIDDEN, "")
}

/// A WebSocket handshake whose `Sec-WebSocket-Protocol` is not ASCII text.
pub fn invalid_subprotocol(settings: &Settings) -> Response<ResponseBody> {
    plain(
        settings,
        StatusCode::BAD_REQUEST,
        "Failed to open a WebSocket connection: invalid Sec-WebSocket-Protocol header.\n",
    )
}
