//! An awaitable that is already complete: `await` returns its value without a trip through the
//! event loop. Used when `send()` fits the channel or `receive()` has buffered data.

use crate::sync::lock_or_recover;
use pyo3::exceptions::PyStopIteration;
use pyo3::intern;
use pyo3::prelude::*;
use std::sync::Mutex;

/// Drops waiting futures the app already cancelled; true when one is still waiting.
fn prune_waiters(py: Python<'_>, waiters: &mut Vec<Py<PyAny>>) -> PyResult<bool> {
    while let Some(first) = waiters.first() {
        if first
            .bind(py)
            .call_method0(intern!(py, "done"))?
            .is_truthy()?
        {
            waiters.remove(0);
        } else {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Resolves a waiting future created with `loop.create_future()`.
fn set_result(py: Python<'_>, future: &Py<PyAny>, value: Py<PyAny>) -> PyResult<()> {
    future
        .bind(py)
        .call_method1(intern!(py, "set_result"), (value,))?;
    Ok(())
}

/// Hands ready events to waiting `receive()` futures, oldest first (loop thread only). Futures the app
/// cancelled are dropped without consuming an event; `next_event` runs under the same lock as the
/// waiter list, so an event is never taken without a waiter to receive it.
pub fn resolve_waiters<S, G>(
    py: Python<'_>,
    mut lock: impl FnMut() -> G,
    waiters: fn(&mut S) -> &mut Vec<Py<PyAny>>,
    mut next_event: impl FnMut(Python<'_>, &mut S) -> PyResult<Option<Py<PyAny>>>,
) -> PyResult<()>
where
    G: std::ops::DerefMut<Target = S>,
{
    loop {
        let (future, event) = {
            let mut guard = lock();
            let state = &mut *guard;
            if !prune_waiters(py, waiters(state))? {
                return Ok(());
            }
            match next_event(py, state)? {
                Some(event) => (waiters(state).remove(0), event),
                None => return Ok(()),
            }
        };
        set_result(py, &future, event)?;
    }
}

/// A completed awaitable as a Python object.
pub fn done(py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
    Ok(Done::new(value).into_pyobject(py)?.into_any().unbind())
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct Done {
    value: Mutex<Option<Py<PyAny>>>,
}

impl Done {
    pub fn new(value: Py<PyAny>) -> Self {
        Done {
            value: Mutex::new(Some(value)),
        }
    }

    pub fn none(py: Python<'_>) -> Self {
        Done::new(py.None())
    }
}

#[pymethods]
impl Done {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = lock_or_recover(&self.value).take();
        Err(PyStopIteration::new_err((
            value.unwrap_or_else(|| py.None()),
        )))
    }

    fn send(&self, py: Python<'_>, _value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        self.__next__(py)
    }

    #[pyo3(signature = (exc, *_args))]
    fn throw(
        &self,
        exc: Bound<'_, PyAny>,
        _args: Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        if let Ok(e) = exc.cast::<pyo3::exceptions::PyBaseException>() {
            return Err(PyErr::from_value(e.clone().into_any()));
        }
        Err(PyErr::from_value(exc.call0()?))
    }

    fn close(&self) {}
}
