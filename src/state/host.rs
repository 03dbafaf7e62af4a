//! Who holds a lock: this process, this host, and whether a process on this host is alive.
//!
//! Read from /proc rather than through libc so the crate needs no FFI; on a system without /proc
//! every process counts as alive, so a lock is never taken over on a guess.

use std::path::Path;

/// The host name, as the kernel knows it; else `$HOSTNAME`; else "unknown".
pub fn hostname() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    from_kernel
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whether process `pid` on this host still exists.
///
/// A zombie (exited, not yet reaped by its parent) counts as dead: it can no longer write, so its
/// lock protects nothing. When /proc is not mounted we cannot tell, and answer "alive".
pub fn process_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    if pid == 0 {
        return false;
    }
    let proc_dir = Path::new("/proc").join(pid.to_string());
    if !proc_dir.exists() {
        return false;
    }
    // The state is the field after the parenthesised command name, which may itself hold spaces
    // or parentheses; hence the search for the last ')'.
    match std::fs::read_to_string(proc_dir.join("stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        // It existed a moment ago; if it vanished meanwhile, the next attempt will see that.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_an_impossible_pid_is_not() {
        assert!(process_alive(std::process::id()));
        // Above the kernel's PID_MAX_LIMIT (4 194 304), so no process can have it.
        assert!(!process_alive(4_194_305));
        assert!(!process_alive(0));
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
