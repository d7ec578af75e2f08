//! `http.response.pathsend`: opening the file an app names, with errors that say which file and why.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyValueError,
};
use pyo3::PyErr;

/// Opens a regular file for a response; returns it with its current length. The open and the
/// `fstat` run on the loop thread: both are metadata operations, and raising from `send()` (so the
/// app can still answer 500) needs their result before `send()` returns.
pub fn open_regular_file(path: &Path) -> Result<(File, u64), PyErr> {
    let shown = path.display();
    let failed = |err: io::Error| {
        let msg = format!("http.response.pathsend 'path': cannot open {shown:?}: {err}");
        match err.kind() {
            io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
            io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
            _ => PyOSError::new_err(msg),
        }
    };
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading waits for a writer: with O_NONBLOCK it returns at once (and
        // is refused below); reads of a regular file ignore the flag.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    if meta.is_dir() {
        return Err(PyIsADirectoryError::new_err(format!(
            "http.response.pathsend 'path': {shown:?} is a directory"
        )));
    }
    if !meta.is_file() {
        // a FIFO or device has no length to announce and may block a reader forever
        return Err(PyValueError::new_err(format!(
            "http.response.pathsend 'path': {shown:?} is not a regular file"
        )));
    }
    Ok((file, meta.len()))
}
