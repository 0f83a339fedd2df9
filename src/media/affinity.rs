//! Pinning media shards to cores (`[media] pin_shards`): Linux `sched_getaffinity` /
//! `sched_setaffinity` on the calling thread. Which core a shard gets is pure
//! ([`core_for`]); only the two system calls touch the kernel.

use std::io;

/// The CPUs this process may run on (its affinity mask, which `taskset` or a cgroup's
/// cpuset narrows), in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is a plain bit array for which all-zero is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, writable `cpu_set_t` and the size passed is exactly its size;
    // pid 0 names the calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `CPU_ISSET` only reads bit `cpu` of `set`, and `cpu` < the set's bit count.
    Ok((0..bits)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Binds the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cpu out of range",
        ));
    }
    // SAFETY: as in `allowed_cpus`: all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` was checked to be below the set's bit count, so the write stays inside
    // `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The core shard `shard` of `shards` is pinned to, out of the allowed `cpus`. When there are
/// more cores than shards, the first allowed core is left to signalling (the controller's
/// thread) and the shards take the next ones; otherwise shards go round the cores.
pub fn core_for(shard: usize, shards: usize, cpus: &[usize]) -> Option<usize> {
    if cpus.is_empty() {
        return None;
    }
    let skip = usize::from(shards < cpus.len());
    Some(cpus[(shard + skip) % cpus.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_take_the_cores_after_the_first_when_there_are_more_cores() {
        let cpus = [0, 1, 2, 3];
        let three: Vec<_> = (0..3).map(|s| core_for(s, 3, &cpus).unwrap()).collect();
        assert_eq!(three, [1, 2, 3], "core 0 left to signalling");
        let four: Vec<_> = (0..4).map(|s| core_for(s, 4, &cpus).unwrap()).collect();
        assert_eq!(four, [0, 1, 2, 3]);
        let six: Vec<_> = (0..6).map(|s| core_for(s, 6, &cpus).unwrap()).collect();
        assert_eq!(
            six,
            [0, 1, 2, 3, 0, 1],
            "more shards than cores: round the cores"
        );
        // A narrowed mask (taskset -c 4,6): only those.
        assert_eq!(core_for(0, 1, &[4, 6]), Some(6));
        assert_eq!(core_for(0, 1, &[]), None);
    }

    #[test]
    fn this_thread_can_be_pinned_to_a_core_it_may_run_on() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        let last = *cpus.last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(last).unwrap();
            assert_eq!(allowed_cpus().unwrap(), [last]);
        })
        .join()
        .unwrap();
        assert!(pin_current_thread(1 << 20).is_err());
    }
}
