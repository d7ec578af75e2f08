//! Validation of the messages an app passes to `send()`: every error names the message type and
//! the field, and nothing the app sends can reach hyper unchecked (spec G5).

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyInt, PyString};

pub enum HttpSend {
    Start {
        status: u16,
        headers: Vec<(HeaderName, HeaderValue)>,
        /// The app will end its response with `http.response.trailers` messages.
        trailers: bool,
    },
    Body {
        body: Bytes,
        more_body: bool,
    },
    /// `http.response.trailers`: fields sent after the body.
    Trailers {
        headers: Vec<(HeaderName, HeaderValue)>,
        more_trailers: bool,
    },
    /// `http.response.pathsend`: the body is the file at this absolute path.
    PathSend {
        path: std::path::PathBuf,
    },
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

pub fn message_dict<'py>(message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    message.cast::<PyDict>().cloned().map_err(|_| {
        PyTypeError::new_err(format!(
            "ASGI message must be a dict, got {}",
            type_name(message)
        ))
    })
}

pub fn message_type(dict: &Bound<'_, PyDict>) -> PyResult<String> {
    let py = dict.py();
    match dict.get_item(intern!(py, "type"))? {
        Some(t) => match t.cast::<PyString>() {
            Ok(s) => Ok(s.to_str()?.to_owned()),
            Err(_) => Err(PyTypeError::new_err(format!(
                "ASGI message 'type' must be a str, got {}",
                type_name(&t)
            ))),
        },
        None => Err(PyTypeError::new_err(
            "ASGI message is missing the 'type' key",
        )),
    }
}

/// Bodies at least this large are shared with Python instead of copied.
const SHARE_THRESHOLD: usize = 16 * 1024;

/// Keeps an immutable Python buffer (`bytes`, or a `str`'s cached UTF-8) alive for as long as the
/// network side holds its data: the address stays valid while this owns a reference.
struct SharedPyBytes {
    _object: Py<PyAny>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the buffer is immutable and kept alive by `_object`; Py<T> itself is Send + Sync.
unsafe impl Send for SharedPyBytes {}
// SAFETY: as above; only shared reads of immutable memory happen through it.
unsafe impl Sync for SharedPyBytes {}

impl AsRef<[u8]> for SharedPyBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: ptr/len describe the live, immutable buffer of `_object`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A body chunk: small ones are copied, large ones shared with the Python object (no memcpy).
fn bytes_of(b: &Bound<'_, PyBytes>) -> Bytes {
    let data = b.as_bytes();
    if data.len() < SHARE_THRESHOLD {
        return Bytes::copy_from_slice(data);
    }
    Bytes::from_owner(SharedPyBytes {
        ptr: data.as_ptr(),
        len: data.len(),
        _object: b.clone().into_any().unbind(),
    })
}

/// A str's UTF-8, shared like `bytes_of` when large: CPython keeps a str's UTF-8 form (its own data
/// for ASCII, a cached copy otherwise) for the object's whole life.
pub fn utf8_of(s: &Bound<'_, PyString>) -> PyResult<Bytes> {
    let text = s.to_str()?;
    if text.len() < SHARE_THRESHOLD {
        return Ok(Bytes::copy_from_slice(text.as_bytes()));
    }
    Ok(Bytes::from_owner(SharedPyBytes {
        ptr: text.as_ptr(),
        len: text.len(),
        _object: s.clone().into_any().unbind(),
    }))
}

/// Whether `obj` exposes the buffer protocol (`bytes(obj)` copies its memory; an int or a str does not).
fn supports_buffer(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: PyObject_CheckBuffer only reads the type slots of a live object.
    unsafe { pyo3::ffi::PyObject_CheckBuffer(obj.as_ptr()) == 1 }
}

/// Reads a bytes-like field: bytes (shared when large), bytearray or any buffer (copied); a str or
/// anything else is an app bug.
pub fn bytes_field(
    dict: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    what: &str,
) -> PyResult<Option<Bytes>> {
    match dict.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => {
            if let Ok(b) = v.cast::<PyBytes>() {
                Ok(Some(bytes_of(b)))
            } else if let Ok(b) = v.cast::<PyByteArray>() {
                // Copied: the app may change a bytearray after send() returned.
                Ok(Some(Bytes::from(b.to_vec())))
            } else if supports_buffer(&v) {
                // memoryview and other bytes-like objects (uvicorn takes any): their memory may
                // be mutable, so take a copy as a fresh bytes object (shared from here on).
                let copy = v.py().get_type::<PyBytes>().call1((&v,))?;
                Ok(Some(bytes_of(copy.cast::<PyBytes>()?)))
            } else {
                Err(PyTypeError::new_err(format!(
                    "{what} '{}' must be bytes, got {}",
                    key.to_str()?,
                    type_name(&v)
                )))
            }
        }
    }
}

pub fn bool_field(dict: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> PyResult<bool> {
    match dict.get_item(key)? {
        None => Ok(false),
        Some(v) => v.is_truthy(),
    }
}

fn header_pairs(
    headers: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    let iter = headers.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} 'headers' must be an iterable of (bytes, bytes) pairs, got {}",
            type_name(headers)
        ))
    })?;
    for (index, item) in iter.enumerate() {
        let item = item?;
        let pair_err = || {
            PyTypeError::new_err(format!(
                "{what} 'headers' item {index} must be a (bytes, bytes) pair, got {}",
                type_name(&item)
            ))
        };
        let mut parts = item.try_iter().map_err(|_| pair_err())?;
        let name = parts.next().ok_or_else(pair_err)??;
        let value = parts.next().ok_or_else(pair_err)??;
        if parts.next().is_some() {
            return Err(pair_err());
        }
        let name = name.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} 'headers' item {index}: header name must be bytes, got {}",
                type_name(&name)
            ))
        })?;
        let value = value.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} 'headers' item {index}: header value must be bytes, got {}",
                type_name(&value)
            ))
        })?;
        let name_bytes = name.as_bytes();
        let header_name = HeaderName::from_bytes(name_bytes).map_err(|_| {
            PyValueError::new_err(format!(
                "{what} 'headers' item {index}: invalid header name {:?}",
                String::from_utf8_lossy(name_bytes)
            ))
        })?;
        let header_value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
            PyValueError::new_err(format!(
                "{what} 'headers' item {index}: invalid value for header {:?} (control characters are not allowed)",
                header_name.as_str()
            ))
        })?;
        out.push((header_name, header_value));
    }
    Ok(out)
}

pub fn parse_http_send(message: &Bound<'_, PyAny>) -> PyResult<HttpSend> {
    let py = message.py();
    let dict = message_dict(message)?;
    let kind = message_type(&dict)?;
    match kind.as_str() {
        "http.response.start" => {
            let what = "http.response.start";
            let status = dict.get_item(intern!(py, "status"))?.ok_or_else(|| {
                PyTypeError::new_err(format!("{what} is missing the 'status' key"))
            })?;
            let status_int = status.cast::<PyInt>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{what} 'status' must be an int, got {}",
                    type_name(&status)
                ))
            })?;
            let value: i64 = status_int.extract().unwrap_or(-1);
            if !(100..=999).contains(&value) {
                return Err(PyValueError::new_err(format!(
                    "{what} 'status' must be between 100 and 999, got {}",
                    status_int
                )));
            }
            if value < 200 && value != 101 {
                return Err(PyValueError::new_err(format!(
                    "{what} 'status' {value} is informational (1xx) and cannot be the final response"
                )));
            }
            let headers = match dict.get_item(intern!(py, "headers"))? {
                Some(h) if !h.is_none() => header_pairs(&h, what)?,
                _ => Vec::new(),
            };
            Ok(HttpSend::Start {
                status: value as u16,
                headers,
                trailers: bool_field(&dict, intern!(py, "trailers"))?,
            })
        }
        "http.response.body" => {
            let body =
                bytes_field(&dict, intern!(py, "body"), "http.response.body")?.unwrap_or_default();
            let more_body = bool_field(&dict, intern!(py, "more_body"))?;
            Ok(HttpSend::Body { body, more_body })
        }
        "http.response.trailers" => {
            let what = "http.response.trailers";
            let headers = match dict.get_item(intern!(py, "headers"))? {
                Some(h) if !h.is_none() => header_pairs(&h, what)?,
                _ => Vec::new(),
            };
            let more_trailers = bool_field(&dict, intern!(py, "more_trailers"))?;
            Ok(HttpSend::Trailers {
                headers,
                more_trailers,
            })
        }
        "http.response.pathsend" => {
            let what = "http.response.pathsend";
            let path = dict
                .get_item(intern!(py, "path"))?
                .ok_or_else(|| PyTypeError::new_err(format!("{what} is missing the 'path' key")))?;
            let path = path.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{what} 'path' must be a str, got {}",
                    type_name(&path)
                ))
            })?;
            let path = std::path::PathBuf::from(path.to_str()?);
            if !path.is_absolute() {
                return Err(PyValueError::new_err(format!(
                    "{what} 'path' must be an absolute path, got {:?}",
                    path.display().to_string()
                )));
            }
            Ok(HttpSend::PathSend { path })
        }
        other => Err(PyRuntimeError::new_err(format!(
            "Unexpected ASGI message type '{other}' for an HTTP connection"
        ))),
    }
}
