//! Request checks that hyper leaves to the server: RFC 9112's for HTTP/1.x, RFC 9113's Host rule
//! for HTTP/2.

use http::{header, Method, Request, Version};

/// Why a request is rejected with 400 before the app sees it.
pub fn reject_reason<B>(req: &Request<B>) -> Option<&'static str> {
    let uri = req.uri();
    let method = req.method();
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        // ASGI requires an uppercase method; httptools rejects these too
        return Some("method is not uppercase");
    }
    if uri.path_and_query().is_some_and(|p| !p.as_str().is_ascii()) {
        // RFC 9112 3.2: the target is ASCII (anything else percent-encoded); httptools rejects it
        return Some("request target is not ASCII");
    }
    if uri == "*" && method != Method::OPTIONS {
        return Some("asterisk-form is only allowed with OPTIONS");
    }
    let authority_form = uri.scheme().is_none() && uri.authority().is_some();
    if authority_form != (method == Method::CONNECT) {
        return Some("authority-form is only allowed with CONNECT");
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    if req.version() == Version::HTTP_2 {
        // RFC 9113 8.3.1: `:authority` (in the URI here) replaces Host, which is optional; when
        // both are sent they must name the same origin.
        return match (hosts.next(), hosts.next(), uri.authority()) {
            (_, Some(_), _) => Some("more than one Host header"),
            (Some(host), None, Some(authority))
                if host.as_bytes() != authority.as_str().as_bytes() =>
            {
                Some("Host header differs from :authority")
            }
            _ => None,
        };
    }
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Some("more than one Host header"),
        (None, None) if req.version() == Version::HTTP_11 => return Some("missing Host header"),
        (Some(host), None) => {
            let bytes = host.as_bytes();
            if !bytes.is_empty() && bytes.parse_authority().is_none() {
                return Some("malformed Host header");
            }
        }
        (None, None) => {}
    }
    None
}

trait ParseAuthority {
    fn parse_authority(&self) -> Option<http::uri::Authority>;
}

impl ParseAuthority for [u8] {
    fn parse_authority(&self) -> Option<http::uri::Authority> {
        let authority = http::uri::Authority::try_from(self).ok()?;
        // userinfo is not allowed in Host (RFC 9110 7.2)
        if authority.as_str().contains('@') {
            return None;
        }
        Some(authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, version: Version, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri).version(version);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn host_rules() {
        assert!(reject_reason(&req("GET", "/", Version::HTTP_11, &["a.example"])).is_none());
        assert!(reject_reason(&req("GET", "/", Version::HTTP_11, &["a.example:8080"])).is_none());
        assert!(reject_reason(&req("GET", "/", Version::HTTP_11, &["[::1]:80"])).is_none());
        assert!(reject_reason(&req("GET", "/", Version::HTTP_11, &[])).is_some());
        assert!(reject_reason(&req("GET", "/", Version::HTTP_10, &[])).is_none());
        assert!(reject_reason(&req("GET", "/", Version::HTTP_11, &["a", "b"])).is_some());
        assert!(reject_reason(&req("GET", "/", Version::HTTP_11, &["a b"])).is_some());
        assert!(reject_reason(&req("GET", "/", Version::HTTP_11, &["u@a"])).is_some());
    }

    #[test]
    fn http2_host_rules() {
        let h2 =
            |uri: &str, hosts: &[&str]| reject_reason(&req("GET", uri, Version::HTTP_2, hosts));
        // curl and most clients send only :authority
        assert!(h2("http://a.example/", &[]).is_none());
        assert!(h2("http://a.example/", &["a.example"]).is_none());
        assert!(h2("http://a.example/", &["b.example"]).is_some());
        assert!(h2("http://a.example/", &["a.example", "a.example"]).is_some());
    }

    #[test]
    fn non_ascii_target() {
        assert!(reject_reason(&req("GET", "/caf%C3%A9", Version::HTTP_11, &["a"])).is_none());
        assert!(reject_reason(&req("GET", "/café", Version::HTTP_11, &["a"])).is_some());
    }

    #[test]
    fn lowercase_method() {
        assert!(reject_reason(&req("get", "/", Version::HTTP_11, &["a"])).is_some());
    }

    #[test]
    fn target_forms() {
        assert!(reject_reason(&req("OPTIONS", "*", Version::HTTP_11, &["a"])).is_none());
        assert!(reject_reason(&req("GET", "*", Version::HTTP_11, &["a"])).is_some());
        assert!(
            reject_reason(&req("CONNECT", "a.example:443", Version::HTTP_11, &["a"])).is_none()
        );
        assert!(reject_reason(&req("GET", "a.example:443", Version::HTTP_11, &["a"])).is_some());
        assert!(reject_reason(&req("CONNECT", "/x", Version::HTTP_11, &["a"])).is_some());
    }
}
