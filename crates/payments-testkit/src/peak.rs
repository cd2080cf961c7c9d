//! The peak memory of child processes, for the benchmarks: `VmHWM` (the peak resident set)
//! from Linux's `/proc/<pid>/status`, sampled until the children end.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Whether peaks can be read here (Linux's `/proc`).
pub fn available() -> bool {
    std::path::Path::new("/proc/self/status").exists()
}

/// Waits for every one of `children`, sampling each one's peak resident set every `every`:
/// their exit statuses (in order), the time until the last ended, and the largest peak of any
/// of them, in KiB (0 where `/proc` cannot be read).
pub fn wait_all(mut children: Vec<Child>, every: Duration) -> (Vec<ExitStatus>, Duration, u64) {
    let started = Instant::now();
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut peak_kib = 0;
    while statuses.iter().any(Option::is_none) {
        for (child, status) in children.iter_mut().zip(statuses.iter_mut()) {
            if status.is_some() {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
                peak_kib = peak_kib.max(vm_hwm_kib(&text).unwrap_or(0));
            }
            *status = child.try_wait().expect("a child can be waited for");
        }
        std::thread::sleep(every);
    }
    let statuses = statuses.into_iter().flatten().collect();
    (statuses, started.elapsed(), peak_kib)
}

/// [`wait_all`] for one child.
pub fn wait(child: Child, every: Duration) -> (ExitStatus, Duration, u64) {
    let (mut statuses, elapsed, peak_kib) = wait_all(vec![child], every);
    (statuses.remove(0), elapsed, peak_kib)
}

/// `VmHWM` from the text of `/proc/<pid>/status`, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peak_is_read_in_kib() {
        let status =
            "Name:\tpayments\nVmPeak:\t  20000 kB\nVmHWM:\t   14528 kB\nVmRSS:\t 9000 kB\n";
        assert_eq!(super::vm_hwm_kib(status), Some(14_528));
        assert_eq!(super::vm_hwm_kib("Name:\tx\n"), None);
    }
}
