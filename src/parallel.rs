//! Work split into runs on the machine's cores, with results in input order.
//!
//! Matching, planning, rendering and loading a saved plan each have a long list of independent
//! pieces (persons, subject blocks, actions). They hand runs of it to this module and get back,
//! in order, exactly what one thread would have produced: determinism does not depend on the
//! number of cores. Two independent steps can also run side by side (`join`), and a large
//! value nothing reads any more can be freed off the critical path (`drop_elsewhere`). This
//! module must not know what the pieces are, and must not be used where one piece's result
//! depends on another's.

/// The cores this process may use (1 when that cannot be told).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Splits `items` into at most `threads` runs of at least `min_run` items (fewer runs when
/// there is too little work), applies `f` to each run on a thread of its own, and returns the
/// results in run order. A panic in `f` is raised again here.
pub fn runs<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    min_run: usize,
    f: impl Fn(Vec<T>) -> R + Sync,
) -> Vec<R> {
    let count = (items.len() / min_run.max(1)).clamp(1, threads.max(1));
    let size = items.len().div_ceil(count).max(1);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(count);
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(size).collect());
    }
    if chunks.len() <= 1 {
        return chunks.into_iter().map(&f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || f(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Applies `f` to each of `items`, in runs on up to `threads` threads (see [`runs`]), and
/// returns the results in the order of `items`.
pub fn map<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    min_run: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let count = items.len();
    let mut all = Vec::with_capacity(count);
    for run in runs(items, threads, min_run, |run| {
        run.into_iter().map(&f).collect::<Vec<R>>()
    }) {
        all.extend(run);
    }
    all
}

/// Runs `a` on a thread of its own and `b` on this one, and returns both results. A panic in
/// either is raised again here.
pub fn join<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|scope| {
        let a = scope.spawn(a);
        let b = b();
        (a.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), b)
    })
}

/// Frees `value` on a thread of its own, so that whoever let go of it goes on at once. For
/// large structures of many small allocations that nothing reads any more; when no thread can
/// be started it is freed here.
pub fn drop_elsewhere<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("free".into())
        .spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_returns_both_results_and_raises_a_panic_again() {
        let (a, b) = join(|| (1..=100u32).sum::<u32>(), || "here".len());
        assert_eq!((a, b), (5050, 4));
        let caught = std::panic::catch_unwind(|| join(|| panic!("on the other thread"), || 1));
        assert!(caught.is_err());
    }

    #[test]
    fn drop_elsewhere_frees_on_another_thread() {
        struct Tell(std::sync::mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Tell {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        drop_elsewhere(Tell(tx));
        let freed_on = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the value was freed");
        assert_ne!(freed_on, std::thread::current().id());
    }

    #[test]
    fn runs_come_back_in_order_whatever_the_threads() {
        let items: Vec<u32> = (0..10_007).collect();
        let sum_run = |run: Vec<u32>| run.iter().map(|&x| u64::from(x)).collect::<Vec<_>>();
        for threads in [1, 2, 3, 8] {
            let out: Vec<u64> = runs(items.clone(), threads, 100, sum_run)
                .into_iter()
                .flatten()
                .collect();
            assert_eq!(out, (0..10_007u64).collect::<Vec<_>>(), "{threads} threads");
        }
        assert_eq!(
            runs(Vec::<u32>::new(), 4, 10, |r| r.len()),
            Vec::<usize>::new()
        );
        assert_eq!(
            runs(vec![1, 2, 3], 4, 10, |r| r.len()),
            vec![3],
            "too little for two"
        );
        assert_eq!(runs(vec![1; 40], 4, 10, |r| r.len()), vec![10; 4]);
    }

    #[test]
    fn each_item_is_mapped_in_order_whatever_the_threads() {
        let items: Vec<u32> = (0..10_007).collect();
        for threads in [1, 2, 3, 8] {
            let out = map(items.clone(), threads, 100, |x| u64::from(x) * 3);
            assert_eq!(
                out,
                (0..10_007u64).map(|x| x * 3).collect::<Vec<_>>(),
                "{threads} threads"
            );
        }
        assert_eq!(map(Vec::<u32>::new(), 4, 10, |x| x), Vec::<u32>::new());
    }
}
