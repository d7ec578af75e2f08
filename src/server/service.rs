//! The protocol-agnostic service: one request in, one response out. Checks what hyper leaves to
//! servers, applies `--limit-concurrency`, hands WebSocket upgrades on, and passes every other
//! request to its loop's inbox. The per-protocol connection code only drives hyper around it.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::asgi::dispatch::{AsgiInbox, Job, Refused};
use crate::asgi::http::{RequestCtx, RequestShared};
use crate::bridge::inbox::Event;
use crate::state::body::{RequestGuard, ResponseBody};
use crate::state::connection::ConnInfo;
use crate::state::responses;
use crate::state::Shared;

/// What serving one connection's requests needs: the connection, the loop it is pinned to and the
/// server.
pub struct Service {
    pub conn: Arc<ConnInfo>,
    pub inbox: Arc<AsgiInbox>,
    pub server: Arc<Shared>,
}

impl Service {
    pub async fn call(&self, req: Request<Incoming>) -> Response<ResponseBody> {
        let http10 = req.version() < http::Version::HTTP_11;
        let mut response = if self.server.settings.metrics {
            let started = Instant::now();
            let response = self.respond(req).await;
            self.server
                .metrics
                .observe(response.status().as_u16(), started.elapsed());
            response
        } else {
            self.respond(req).await
        };
        if http10 {
            // hyper adds `keep-alive` to an HTTP/1.1 head for a client that asked for it, even
            // after a `close`; an HTTP/1.0 head keeps exactly the option given.
            *response.version_mut() = http::Version::HTTP_10;
        }
        response
    }

    /// 503 over `--limit-concurrency`, logged (warning and access line) on the loop.
    pub fn refuse_over_limit(&self, parts: http::request::Parts) -> Response<ResponseBody> {
        self.inbox.log_warning("Exceeded concurrency limit.");
        self.inbox.push(Event::Job(Job::Refused(Box::new(Refused {
            parts,
            conn: self.conn.clone(),
            status: 503,
        }))));
        responses::service_unavailable(&self.server.settings)
    }

    async fn respond(&self, req: Request<Incoming>) -> Response<ResponseBody> {
        let settings = &self.server.settings;
        if super::validate::reject_reason(&req).is_some() {
            self.inbox.log_warning("Invalid HTTP request received.");
            return responses::bad_request(settings);
        }
        if let Some(status) = super::limits::exceeded(&req, settings) {
            self.inbox
                .log_warning("Request head over a configured limit.");
            return responses::over_limit(settings, status);
        }
        if settings.ws_enabled && super::websocket::is_upgrade(&req) {
            return super::websocket::handle_upgrade(req, self).await;
        }
        if !self.server.try_start_request() {
            return self.refuse_over_limit(req.into_parts().0);
        }
        self.conn.request_started();
        let (parts, body) = req.into_parts();
        let has_body = !hyper::body::Body::is_end_stream(&body);
        let expects_continue = parts
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let shared = RequestShared::new(
            body,
            self.inbox.clone(),
            self.server.clone(),
            self.conn.clone(),
            has_body,
            expects_continue,
        );
        shared.take_ready_body();
        let guard = RequestGuard::new(shared.clone());
        let (respond, response) = oneshot::channel();
        self.inbox
            .push(Event::Job(Job::Request(Box::new(RequestCtx {
                parts,
                shared: shared.clone(),
                respond,
            }))));
        tokio::select! {
            biased;
            outcome = response => match outcome {
                Ok(response) => {
                    if response.body().guards_request() {
                        guard.disarm();
                    }
                    response
                }
                Err(_) => responses::internal_error(settings),
            },
            _ = shared.body_failed.notified() => shared
                .body_failure_response(settings)
                .unwrap_or_else(|| responses::bad_request(settings)),
        }
    }
}
