//! gunicorn's request limits (`--limit-request-line`, `--limit-request-field-size`), checked on
//! the parsed head before the app sees it. The header count (`--limit-request-fields`) is hyper's
//! own `max_headers`, set where the HTTP/1 connection is built.

use http::{Request, StatusCode};

use crate::config::Settings;

/// The status a request over a configured limit is answered with, if it is.
pub fn exceeded<B>(req: &Request<B>, settings: &Settings) -> Option<StatusCode> {
    if let Some(limit) = settings.limit_request_line {
        // `METHOD SP request-target SP HTTP/1.1`, as it came over the wire.
        let target = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string().len(), |pq| pq.as_str().len());
        if req.method().as_str().len() + 1 + target + 9 > limit {
            return Some(StatusCode::URI_TOO_LONG);
        }
    }
    if let Some(limit) = settings.limit_request_field_size {
        let too_long = req
            .headers()
            .iter()
            .any(|(name, value)| name.as_str().len() + 2 + value.len() > limit);
        if too_long {
            return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
    }
    None
}
