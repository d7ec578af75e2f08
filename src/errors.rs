//! Exceptions raised into Python by the Rust side.

use pyo3::create_exception;
use pyo3::exceptions::PyOSError;

create_exception!(
    _core,
    ClientDisconnected,
    PyOSError,
    "The client closed the connection; raised by send() (ASGI spec 2.4)."
);
