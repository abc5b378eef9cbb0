//! Work split over the machine's threads, or done on the calling thread where there is one
//! part (and always in the browser, where no thread can be spawned).

/// How many threads work may be split over: the machine's, 1 in the browser.
pub(crate) fn available() -> usize {
    if cfg!(target_arch = "wasm32") {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// `job(index, part)` for every part, each on a scoped thread of its own, or on this thread
/// when there is at most one part; the results in order (a part whose thread panicked is
/// its panic payload).
pub(crate) fn run_parts<T: Send, R: Send>(
    parts: Vec<T>,
    job: impl Fn(usize, T) -> R + Sync,
) -> Vec<std::thread::Result<R>> {
    if parts.len() <= 1 {
        return parts.into_iter().enumerate().map(|(i, part)| Ok(job(i, part))).collect();
    }
    let job = &job;
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            parts.into_iter().enumerate().map(|(i, part)| scope.spawn(move || job(i, part))).collect();
        handles.into_iter().map(|handle| handle.join()).collect()
    })
}
