//! Waiting for the GPU. Every wait in this crate is a future: a read-back awaits its
//! buffer's mapping, an error check awaits its error scopes. Natively each blocking method
//! runs its future to completion on the calling thread ([`block_on`]); in the browser,
//! where nothing may block, the caller awaits the asynchronous form instead.

use std::future::Future;

use super::context::one_line;
use super::GpuContext;
use crate::{Error, Result};

/// Runs `future` to completion on this thread (pollster). `what` names the blocking call.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn block_on<T>(_what: &'static str, future: impl Future<Output = Result<T>>) -> Result<T> {
    pollster::block_on(future)
}

/// The browser's thread may not block: `future` is polled once, and one that would wait
/// for the GPU is [`crate::Error::WouldBlock`] naming `what` (its work stays submitted).
#[cfg(target_arch = "wasm32")]
pub(crate) fn block_on<T>(what: &'static str, future: impl Future<Output = Result<T>>) -> Result<T> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => Err(crate::Error::WouldBlock(what)),
    }
}

/// An error scope's verdict, awaited later (the browser answers asynchronously).
#[cfg(target_arch = "wasm32")]
pub(super) type ScopeCheck = std::pin::Pin<Box<dyn Future<Output = Option<wgpu::Error>>>>;

impl GpuContext {
    /// Runs `f` inside validation, out-of-memory and internal error scopes and returns the
    /// first wgpu error raised meanwhile (or an uncaptured one) as [`Error::Gpu`].
    ///
    /// In the browser the scopes answer asynchronously: their errors are returned by the
    /// next asynchronous wait (a read-back, [`GpuContext::check_errors_async`]).
    pub fn capture<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        #[cfg(not(target_arch = "wasm32"))]
        return block_on("GpuContext::capture", self.capture_async(f));
        #[cfg(target_arch = "wasm32")]
        {
            let (value, check) = self.scoped(f);
            self.inner.pending_scopes.lock().map_err(|_| poisoned())?.push(Box::pin(check));
            self.take_uncaptured()?;
            Ok(value)
        }
    }

    /// [`GpuContext::capture`] of a fallible `f`: its error, or the first wgpu error
    /// raised meanwhile, as one result.
    pub fn try_capture<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.capture(f)?
    }

    /// [`GpuContext::capture`], awaiting the scopes' verdict (in the browser too).
    pub async fn capture_async<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let (value, check) = self.scoped(f);
        if let Some(e) = check.await {
            return Err(Error::Gpu(one_line(&e)));
        }
        self.take_uncaptured()?;
        Ok(value)
    }

    /// Runs `f` inside the three scopes, pops them (in order) and returns `f`'s value and
    /// the first error of the scopes, to await.
    fn scoped<T>(&self, f: impl FnOnce() -> T) -> (T, impl Future<Output = Option<wgpu::Error>> + 'static) {
        let device = &self.inner.device;
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let verdicts = [validation.pop(), oom.pop(), internal.pop()];
        let check = async move {
            for verdict in verdicts {
                if let Some(e) = verdict.await {
                    return Some(e);
                }
            }
            None
        };
        (value, check)
    }

    /// The first wgpu error of the work recorded so far: in the browser, the error scopes
    /// of every capture not yet checked; everywhere, an error the uncaptured-error handler
    /// kept. Every read-back checks it after its wait.
    pub async fn check_errors_async(&self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        {
            let pending = std::mem::take(&mut *self.inner.pending_scopes.lock().map_err(|_| poisoned())?);
            let mut first = None;
            for check in pending {
                let verdict = check.await;
                first = first.or(verdict);
            }
            if let Some(e) = first {
                return Err(Error::Gpu(one_line(&e)));
            }
        }
        self.take_uncaptured()
    }

    /// Returns (and clears) an error that reached the uncaptured-error handler.
    fn take_uncaptured(&self) -> Result<()> {
        let mut errors = self.inner.uncaptured.lock().map_err(|_| Error::Gpu("error log poisoned".into()))?;
        let first = errors.drain(..).next();
        match first {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Blocks until all submitted work has finished.
    pub fn wait_idle(&self) -> Result<()> {
        self.wait_for(None)
    }

    /// Blocks until `submission` has finished (with `None`, all work submitted so far). In
    /// the browser it returns at once: a read-back's mapping is what waits there.
    pub fn wait_for(&self, submission: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let poll = wgpu::PollType::Wait { submission_index: submission, timeout: None };
        self.inner.device.poll(poll).map(|_| ()).map_err(|e| Error::Gpu(e.to_string()))
    }
}

#[cfg(target_arch = "wasm32")]
fn poisoned() -> Error {
    Error::Internal("the pending error scopes are poisoned".into())
}
