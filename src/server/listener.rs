//! Accept loops over sockets bound by the Python side (host/port, --uds, --fd): each accepted
//! connection is pinned to one event loop and served in a task of its own (its TLS handshake too).

use std::io;
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};

use super::loops::Loops;
use super::protocol;
use super::service::Service;
use super::tls;
use crate::asgi::dispatch::AsgiInbox;
use crate::state::connection::ConnInfo;
use crate::state::{Shared, ShutdownStage};

fn dup(fd: i32) -> io::Result<i32> {
    // SAFETY: dup has no memory-safety preconditions; an invalid fd yields -1, checked below.
    let new_fd = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new_fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(new_fd)
    }
}

pub fn start(shared: Arc<Shared>, loops: Arc<Loops>, fd: i32, unix: bool) -> io::Result<()> {
    let owned = dup(fd)?;
    let _guard = shared.runtime.enter();
    if unix {
        // SAFETY: `owned` is a fresh duplicate that nothing else owns.
        let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(owned) };
        std_listener.set_nonblocking(true)?;
        let path = std_listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let listener = UnixListener::from_std(std_listener)?;
        shared
            .runtime
            .spawn(accept_unix(listener, path, shared.clone(), loops));
    } else {
        // SAFETY: as above.
        let std_listener = unsafe { std::net::TcpListener::from_raw_fd(owned) };
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        shared
            .runtime
            .spawn(accept_tcp(listener, shared.clone(), loops));
    }
    Ok(())
}

fn spawn_connection<IO>(shared: &Arc<Shared>, io: IO, info: ConnInfo, inbox: Arc<AsgiInbox>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if let Some(tls) = &shared.settings.tls {
        shared.runtime.spawn(tls::handshake_then_serve(
            io,
            tls.clone(),
            info,
            inbox,
            shared.clone(),
        ));
        return;
    }
    let svc = Arc::new(Service {
        conn: Arc::new(info),
        inbox,
        server: shared.clone(),
    });
    let rx = shared.shutdown_receiver();
    let count = shared.connection_opened();
    shared
        .runtime
        .spawn(protocol::serve_connection(io, svc, rx, None, count));
}

/// Accept errors such as EMFILE are transient: back off briefly instead of spinning.
async fn accept_error_pause() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

async fn accept_tcp(listener: TcpListener, shared: Arc<Shared>, loops: Arc<Loops>) {
    let mut stop = shared.shutdown_receiver();
    loop {
        if *stop.borrow() != ShutdownStage::Running {
            return;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(inbox) = loops.pick() else { continue };
                    let _ = stream.set_nodelay(true);
                    let server = stream
                        .local_addr()
                        .ok()
                        .map(|a| (a.ip().to_string(), Some(a.port())));
                    let info = ConnInfo::new(
                        Some((peer.ip().to_string(), peer.port())),
                        Some(peer.ip()),
                        server,
                    );
                    spawn_connection(&shared, stream, info, inbox);
                    // Worker processes share one listening socket: taking one connection per turn
                    // lets the others accept too, instead of one process draining a burst.
                    tokio::task::yield_now().await;
                }
                Err(_) => accept_error_pause().await,
            },
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

async fn accept_unix(listener: UnixListener, path: String, shared: Arc<Shared>, loops: Arc<Loops>) {
    let mut stop = shared.shutdown_receiver();
    loop {
        if *stop.borrow() != ShutdownStage::Running {
            return;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Some(inbox) = loops.pick() else { continue };
                    let info = ConnInfo::new(None, None, Some((path.clone(), None)));
                    spawn_connection(&shared, stream, info, inbox);
                }
                Err(_) => accept_error_pause().await,
            },
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}
