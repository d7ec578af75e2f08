//! `ceiling --port N [--host ADDR]`: a bare hyper 1.x HTTP/1.1 hello-world server on a tokio
//! current-thread runtime. It answers every request with `200 OK`, `content-type: text/plain` and
//! `Hello, world!`, which is what the raw ASGI hello app answers, so it is the physical limit of one
//! core for that workload (accept + parse + respond + the syscalls, and nothing else).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"Hello, world!";

fn usage() -> ! {
    eprintln!("usage: ceiling --port N [--host ADDR]");
    std::process::exit(2);
}

fn parse_args() -> SocketAddr {
    let mut host = String::from("127.0.0.1");
    let mut port: Option<u16> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).or_else(|| usage()),
            "--host" => host = args.next().unwrap_or_else(|| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let port = port.unwrap_or_else(|| usage());
    format!("{host}:{port}").parse().unwrap_or_else(|_| usage())
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = parse_args();
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ceiling: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // EMFILE and friends: back off briefly, keep serving the connections we have.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::task::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
