//! Telling a forked child from its parent without a system call per check.
//!
//! [`generation`] changes in a child process right after `fork` (a `pthread_atfork` child
//! handler increments it), so state drawn in the parent and inherited by the child (the GCM
//! nonce batches of [`random_nonce`](crate::random_nonce)) can be told apart from state drawn in
//! the child. Reading it is one atomic load; `getpid`, the alternative, is a system call on
//! every check.
//!
//! If the handler cannot be registered, [`generation`] falls back to the process id.

// Registering the handler is one FFI call; the workspace denies `unsafe` everywhere else.
#![allow(unsafe_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Incremented in the child of every `fork`; starts above every process id.
static GENERATION: AtomicU64 = AtomicU64::new(1 << 32);

#[cfg(unix)]
extern "C" fn after_fork_in_child() {
    // Async-signal-safe: one atomic increment.
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Whether the handler is registered (`false`: fall back to the process id).
fn registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        #[cfg(unix)]
        {
            // SAFETY: registers a plain `extern "C" fn` with no captured state as the child
            // handler; the handler only touches a static atomic.
            unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) == 0 }
        }
        #[cfg(not(unix))]
        {
            // No fork: a process never becomes another with this one's memory.
            true
        }
    })
}

/// A value that differs between a process and any child it forked after the first call.
pub(crate) fn generation() -> u64 {
    if registered() { GENERATION.load(Ordering::SeqCst) } else { u64::from(std::process::id()) }
}

#[cfg(all(test, unix))]
mod tests {
    use crate::{GCM_NONCE_LEN, random_nonce};

    #[test]
    fn a_forked_child_never_hands_out_its_parents_nonces() {
        // The parent draws a batch and uses one nonce; the child inherits the rest.
        let first = random_nonce().unwrap();
        let mut fds = [0i32; 2];
        // SAFETY: a two-element array for pipe(2) to fill.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only draws a nonce, writes it to the pipe and exits without
        // unwinding or running destructors.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let n = random_nonce().unwrap_or([0; GCM_NONCE_LEN]);
            // SAFETY: writes 12 bytes from a live array, then ends the child.
            unsafe {
                libc::write(fds[1], n.as_ptr().cast(), GCM_NONCE_LEN);
                libc::_exit(0);
            }
        }
        let parents_next = random_nonce().unwrap();
        let mut childs = [0u8; GCM_NONCE_LEN];
        // SAFETY: reads at most 12 bytes into a 12-byte array; waits for our own child.
        let read = unsafe {
            let n = libc::read(fds[0], childs.as_mut_ptr().cast(), GCM_NONCE_LEN);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            libc::close(fds[0]);
            libc::close(fds[1]);
            n
        };
        assert_eq!(read, GCM_NONCE_LEN as isize, "the child reported its nonce");
        assert_ne!(childs, [0; GCM_NONCE_LEN], "the child drew a nonce");
        assert_ne!(childs, parents_next, "the child did not reuse the parent's next nonce");
        assert_ne!(childs, first);
    }
}
