# ruff: noqa: E501 - one explanation per line reads better than wrapped strings
"""Why each known failure happens, per server (each checked by hand); used by ``report.py``.

Keys are ``module.py::test_name[param]`` as they appear in the report. ``compat`` failures of servers
other than uvicorn/turboasgi are differences from uvicorn, not bugs.
"""

_HTTP10_CHUNKED = (
    "sends `transfer-encoding: chunked` to an HTTP/1.0 client (httptools path), which HTTP/1.0 cannot "
    "decode (H3; listed in uvicorn-compat.md as a deviation)"
)
_DUP_SERVER = "emits its own `server` header in addition to the app's: two `Server` fields (RFC 9110 5.3)"
_DUP_DATE = "emits its own `date` header in addition to the app's: two `Date` fields (RFC 9110 5.3)"
_NO_HOST = "serves an HTTP/1.1 request without Host with 200 (RFC 9112 3.2: MUST answer 400)"
_DUP_HOST = "serves an HTTP/1.1 request with two Host headers with 200 (RFC 9112 3.2: MUST answer 400)"
_H2_OVER_H1 = "answers a request-line claiming `HTTP/2.0` over HTTP/1 framing with 200 instead of 505/400"
_NO_HEADER_LIMIT = "accepts a 1 MiB header section and serves it (no header size limit: memory DoS exposure)"
_NO_HEADER_COUNT = "accepts 100,000 header fields and serves the request (no header count limit)"
_BAD_CHUNK = (
    "answers 200 to a request whose chunked body is malformed, with the body cut where parsing failed: "
    "the body error is reported to the app as a normal end of body"
)
_COMPAT_LOGS = "log format differs from uvicorn's (expected: different logging, not a bug)"
_NO_PROXY = "has no default proxy-header handling (uvicorn trusts X-Forwarded-* from 127.0.0.1)"
_H2_COOKIES = (
    "passes an HTTP/2 request's `cookie` fields to the app one per pair; RFC 9113 8.2.3 asks for them "
    "to be joined with `; ` before reaching a generic HTTP application"
)
_PLAIN_500 = "error responses have a different body/content-type than uvicorn's (not a bug)"

NOTES: dict[str, dict[str, str]] = {
    "turboasgi": {
        "test_compat.py::test_default_headers_before_app_headers": (
            "writes `server` and `date` after the app's headers; uvicorn writes them first"
        ),
        "test_compat.py::test_invalid_request_body_and_type": (
            "400 for an invalid request has an empty body and no content-type; uvicorn sends "
            "`text/plain; charset=utf-8` + `Invalid HTTP request received.`"
        ),
        "test_websocket.py::test_denial_response": (
            "WebSocket (issue 6): the denial response (401 + body) arrives but the connection stays open (W9)"
        ),
        "test_websocket.py::test_invalid_utf8_text_fails_connection": (
            "WebSocket (issue 6): invalid UTF-8 in a text frame is closed with 1002 instead of 1007"
        ),
        "test_spec_http.py::test_scope_header_order_and_duplicates_kept": (
            "request headers are regrouped by name (hyper HeaderMap): `X-A:1, X-B:2, X-A:3` reaches the app "
            "as `x-a:1, x-a:3, x-b:2`; H1 requires the received order"
        ),
    },
    "uvicorn": {
        "test_http1.py::test_app_date_header_replaces_default": _DUP_DATE,
        "test_http1.py::test_app_server_header_replaces_default": _DUP_SERVER,
        "test_http1.py::test_http_version_2_over_http1_rejected": _H2_OVER_H1 + " (httptools)",
        "test_http1.py::test_malformed_request_rejected[duplicate-host]": _DUP_HOST,
        "test_http1.py::test_malformed_request_rejected[missing-host]": _NO_HOST,
        "test_http1.py::test_malformed_request_rejected[missing-http-version]": (
            "treats `GET /head` (no HTTP version, HTTP/0.9 form) as a request and answers it with an "
            "HTTP/1.1 200 (httptools)"
        ),
        "test_http1.py::test_oversized_header_rejected": _NO_HEADER_LIMIT + " (httptools has no limit)",
        "test_http1.py::test_too_many_headers_rejected": _NO_HEADER_COUNT,
        "test_spec_http.py::test_app_transfer_encoding_header_not_sent_to_http10": (
            "honours the app's `transfer-encoding: chunked` and chunks the body even for an HTTP/1.0 client "
            "(H3: the app's header must be ignored)"
        ),
        "test_spec_http.py::test_response_without_length_http10_not_chunked": _HTTP10_CHUNKED,
        "test_spec_http.py::test_scope_header_value_whitespace_trimmed": (
            "keeps trailing whitespace in header values (`b'padded value \\t'`); RFC 9112 5 excludes OWS "
            "from the field value (httptools)"
        ),
        "test_websocket.py::test_abrupt_loss_is_1006": (
            "reports code 1005 instead of 1006 when the TCP connection drops without a close frame (W7)"
        ),
        "test_websocket.py::test_app_error_after_accept_is_1011": (
            "closes the TCP connection without a close frame when the app raises after accept; W8 asks for "
            "close code 1011"
        ),
        "test_websocket.py::test_send_with_both_text_and_bytes_raises": (
            "accepts a `websocket.send` carrying both `text` and `bytes` and silently sends one of them (G5/W5)"
        ),
    },
    "granian": {
        "test_http2.py::test_h2_cookies_rejoined": _H2_COOKIES,
        "test_compat.py::test_access_log_line": "no access log by default; different format ("
        + _COMPAT_LOGS
        + ")",
        "test_compat.py::test_app_error_500_body_and_close": _PLAIN_500,
        "test_compat.py::test_app_error_logged_with_traceback": _COMPAT_LOGS,
        "test_compat.py::test_app_returns_without_response_500": (
            "body `Internal server error` instead of `Internal Server Error`"
        ),
        "test_compat.py::test_body_length_mismatch_raises_and_closes[long]": (
            "sends 10 body bytes after declaring content-length 5, no error in send(): the extra bytes "
            "desynchronise a keep-alive connection"
        ),
        "test_compat.py::test_body_length_mismatch_raises_and_closes[short]": (
            "declares content-length 10, app sends 5 and finishes: no error in send() and the connection "
            "stays open, so the client hangs waiting for the rest"
        ),
        "test_compat.py::test_default_headers_before_app_headers": "writes `server`/`date` after the app's headers",
        "test_compat.py::test_invalid_request_body_and_type": _PLAIN_500,
        "test_compat.py::test_lifespan_unsupported_message": _COMPAT_LOGS,
        "test_compat.py::test_proxy_headers_client": _NO_PROXY,
        "test_compat.py::test_proxy_headers_scheme": _NO_PROXY,
        "test_compat.py::test_shutdown_log_lines": _COMPAT_LOGS,
        "test_compat.py::test_startup_failed_exit_code_3": "exits non-zero but not with uvicorn's code 3",
        "test_compat.py::test_startup_log_lines": _COMPAT_LOGS,
        "test_compat.py::test_websocket_accept_log_line": _COMPAT_LOGS,
        "test_compat.py::test_websocket_closed_1012_on_shutdown": (
            "closes open WebSockets without a 1012 close frame at shutdown"
        ),
        "test_compat.py::test_websocket_permessage_deflate_negotiated": "no permessage-deflate support",
        "test_compat.py::test_websocket_proxy_scheme_wss": _NO_PROXY,
        "test_http1.py::test_bad_chunked_body_not_accepted[data-longer-than-size]": _BAD_CHUNK,
        "test_http1.py::test_bad_chunked_body_not_accepted[missing-crlf-after-data]": _BAD_CHUNK,
        "test_http1.py::test_bad_chunked_body_not_accepted[negative-size]": _BAD_CHUNK,
        "test_http1.py::test_bad_chunked_body_not_accepted[non-hex-size]": _BAD_CHUNK,
        "test_http1.py::test_bad_chunked_body_not_accepted[size-overflow]": _BAD_CHUNK,
        "test_http1.py::test_bad_chunked_body_not_accepted[size-with-0x-prefix]": _BAD_CHUNK,
        "test_http1.py::test_malformed_request_rejected[duplicate-host]": _DUP_HOST,
        "test_http1.py::test_malformed_request_rejected[missing-host]": _NO_HOST,
        "test_spec_http.py::test_asgi2_app_served": "`--interface asgi` serves ASGI 3 only; a legacy app gets 500 (G2)",
        "test_spec_http.py::test_malformed_send_raises[body-str]": (
            "a `str` body is accepted without error (sent as an empty body; G5)"
        ),
        "test_spec_http.py::test_scope_client_is_host_and_int_port": "client port is a str, not an int (H1)",
        "test_spec_http.py::test_scope_header_order_and_duplicates_kept": (
            "request headers regrouped by name, received order lost (H1)"
        ),
        "test_spec_http.py::test_scope_http_version_1_0": 'reports HTTP/1.0 as `"1"` instead of `"1.0"` (H1)',
        "test_spec_http.py::test_scope_server_is_host_and_int_port": "server port is a str, not an int (H1)",
        "test_websocket.py::test_abrupt_loss_is_1006": "reports 1005 instead of 1006 for a dropped connection (W7)",
        "test_websocket.py::test_accept_headers": "ignores `headers` of `websocket.accept` (W4, spec 2.1)",
        "test_websocket.py::test_app_error_after_accept_is_1011": (
            "sends a close frame without a code (1005) instead of 1011 when the app raises (W8)"
        ),
        "test_websocket.py::test_app_error_before_accept_is_500": (
            "answers 403 instead of 500 when the app raises before accepting (W8)"
        ),
        "test_websocket.py::test_denial_response": (
            "advertises `websocket.http.response` and sends the denial response, but keeps the connection "
            "open afterwards (W9: send it and close)"
        ),
        "test_websocket.py::test_invalid_utf8_text_fails_connection": (
            "fails the connection on invalid UTF-8 with a close frame without a code instead of 1007 "
            "(RFC 6455 7.4.1 SHOULD)"
        ),
        "test_websocket.py::test_oversized_control_frame_fails_connection": (
            "close frame without a code instead of 1002 for a 200-byte ping"
        ),
        "test_websocket.py::test_oversized_message_closed_1009": (
            "no message size limit: a 17 MiB message is accepted (uvicorn/hypercorn close with 1009)"
        ),
        "test_websocket.py::test_reserved_opcode_fails_connection": (
            "close frame without a code instead of 1002 for a reserved opcode"
        ),
        "test_websocket.py::test_scope_client_and_server": "ports are str, not int (W1)",
    },
    "hypercorn": {
        "test_compat.py::test_access_log_line": "no access log by default (" + _COMPAT_LOGS + ")",
        "test_compat.py::test_app_error_500_body_and_close": _PLAIN_500,
        "test_compat.py::test_app_error_logged_with_traceback": _COMPAT_LOGS,
        "test_compat.py::test_app_returns_without_response_500": "500 with an empty body",
        "test_compat.py::test_continue_only_when_app_reads": (
            "sends `100 Continue` before the app calls receive() (h11); uvicorn waits for the first receive()"
        ),
        "test_compat.py::test_default_headers_before_app_headers": "writes `date`/`server` after the app's headers",
        "test_compat.py::test_invalid_request_body_and_type": _PLAIN_500,
        "test_compat.py::test_lifespan_unsupported_message": _COMPAT_LOGS,
        "test_compat.py::test_proxy_headers_client": _NO_PROXY,
        "test_compat.py::test_proxy_headers_scheme": _NO_PROXY,
        "test_compat.py::test_shutdown_log_lines": _COMPAT_LOGS,
        "test_compat.py::test_startup_failed_exit_code_3": "exits 0 after lifespan.startup.failed (see L5 failure)",
        "test_compat.py::test_startup_log_lines": _COMPAT_LOGS,
        "test_compat.py::test_websocket_accept_log_line": _COMPAT_LOGS,
        "test_compat.py::test_websocket_closed_1012_on_shutdown": "closes WebSockets with 1011, not 1012, at shutdown",
        "test_compat.py::test_websocket_proxy_scheme_wss": _NO_PROXY,
        "test_http1.py::test_absolute_form_target_accepted": (
            "passes the absolute-form target `http://localhost/scope/abs` through as the path (404 from the "
            "app); RFC 9112 3.2.2 MUST accept absolute-form, the ASGI path is `/scope/abs`"
        ),
        "test_http1.py::test_app_date_header_replaces_default": _DUP_DATE,
        "test_http1.py::test_app_server_header_replaces_default": _DUP_SERVER,
        "test_http1.py::test_content_length_and_transfer_encoding_not_smuggled": (
            "frames a CL+TE request by Transfer-Encoding (fine) but keeps the connection open; RFC 9112 6.1 "
            "says the server MUST close it after responding"
        ),
        "test_http1.py::test_http_version_2_over_http1_rejected": _H2_OVER_H1,
        "test_http1.py::test_leading_empty_line_ignored": (
            "an empty line before the request-line makes h11 answer 400 (RFC 9112 2.2 SHOULD ignore it)"
        ),
        "test_http1.py::test_pipelined_request_after_connection_close_not_served": (
            "a valid `Connection: close` request followed by more bytes is answered 400 instead of 200 (h11 "
            "rejects the data after the close)"
        ),
        "test_lifespan.py::test_startup_failed_exits_nonzero": (
            "exits with code 0 after `lifespan.startup.failed` (L5: exit non-zero)"
        ),
        "test_spec_http.py::test_asgi2_app_served": (
            "calls the legacy class as an ASGI 3 app (`Asgi2App(scope, receive, send)` -> TypeError) and "
            "answers 500 (G2)"
        ),
        "test_spec_http.py::test_malformed_send_raises[status-str]": (
            '`status: "200"` (a str) is accepted silently (G5)'
        ),
        "test_websocket.py::test_client_close_code_delivered": (
            "echoes the client's close code 4001 on the wire but gives the app `websocket.disconnect` with "
            "1006 (W7)"
        ),
        "test_websocket.py::test_client_close_without_code_is_1005": (
            "an empty client close frame is reported to the app as 1006 instead of 1005 (W7)"
        ),
        "test_websocket.py::test_invalid_utf8_text_fails_connection": (
            "drops the TCP connection without a close frame on invalid UTF-8 (RFC 6455 7.1.7 SHOULD send 1007)"
        ),
        "test_websocket.py::test_oversized_control_frame_fails_connection": (
            "drops the TCP connection without a close frame (1002 expected)"
        ),
        "test_websocket.py::test_reserved_opcode_fails_connection": (
            "drops the TCP connection without a close frame (1002 expected)"
        ),
        "test_websocket.py::test_send_with_both_text_and_bytes_raises": (
            "accepts a `websocket.send` with both `text` and `bytes` (G5/W5)"
        ),
    },
}
