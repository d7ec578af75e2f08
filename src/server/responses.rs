//! Responses the server writes itself, never seen by the app, and the default headers every
//! response carries.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::asgi::body::ResponseBody;
use crate::config::Settings;

/// `server` and `--header` defaults; the app's own value of a header wins (never duplicated).
pub fn apply_default_headers(headers: &mut HeaderMap, settings: &Settings) {
    if settings.server_header && !headers.contains_key(header::SERVER) {
        headers.insert(header::SERVER, HeaderValue::from_static("turboasgi"));
    }
    for (name, value) in &settings.default_headers {
        if !headers.contains_key(name) {
            headers.append(name.clone(), value.clone());
        }
    }
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

pub fn forbidden(settings: &Settings) -> Response<ResponseBody> {
    plain(settings, StatusCode::FORBIDDEN, "Forbidden")
}
