//! `--max-memory`: the limit on what sessions hold in mirage-run's memory, their content and
//! their entries (see `mirage_core::budget`). A command that writes without end then meets
//! `ENOSPC`, as on a full disk, instead of growing mirage-run until the out-of-memory killer
//! ends the run.

use crate::UsageError;

/// Reads a limit: a number of bytes, optionally with K, M, G or T (powers of 1024), or `none`.
pub(crate) fn parse(value: &str) -> Result<Option<u64>, UsageError> {
    let wrong = || UsageError(format!("--max-memory takes a size such as 512M, 8G or none, not '{value}'"));
    let value = value.trim();
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let (digits, shift) = match value.char_indices().last().ok_or_else(wrong)? {
        (at, unit) if unit.is_ascii_alphabetic() => {
            let shift = match unit.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(wrong()),
            };
            (&value[..at], shift)
        }
        _ => (value, 0),
    };
    let number: u64 = digits.parse().map_err(|_| wrong())?;
    let bytes = number.checked_mul(1 << shift).filter(|&bytes| bytes > 0).ok_or_else(wrong)?;
    Ok(Some(bytes))
}

/// The limit when none is given: half the memory this process may use (the machine's
/// `MemTotal`, or less where a control group says so), or none where it cannot be read.
fn default_limit() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 =
        meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    let usable = cgroup_limit().map_or(kib * 1024, |cgroup| cgroup.min(kib * 1024));
    Some(usable / 2)
}

/// The lowest `memory.max` of this process's control group and its ancestors (cgroup v2),
/// if any is set.
fn cgroup_limit() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let mut dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let mut lowest: Option<u64> = None;
    loop {
        if let Ok(max) = std::fs::read_to_string(dir.join("memory.max"))
            && let Ok(max) = max.trim().parse::<u64>()
        {
            lowest = Some(lowest.map_or(max, |l| l.min(max)));
        }
        if dir == std::path::Path::new("/sys/fs/cgroup") || !dir.pop() {
            return lowest;
        }
    }
}

/// Sets the process's limit: `chosen` (from the command line or `mirage.toml`: a limit, or
/// `none`) or else the default.
pub(crate) fn apply(chosen: Option<Option<u64>>) {
    mirage_core::set_content_limit(chosen.unwrap_or_else(default_limit));
}

/// Says so when the sessions read back from the store already hold most of the limit: the
/// command's writes would soon fail.
pub(crate) fn warn_if_nearly_full() {
    let (Some(limit), held) = (mirage_core::content_limit(), mirage_core::content_held()) else { return };
    if held >= limit / 10 * 9 {
        eprintln!(
            "mirage-run: the store's sessions already hold {} of the {} limit on what mirage-run keeps in \
             memory, so writes may fail with ENOSPC: commit or abort sessions (mirage-run sessions), or raise \
             --max-memory",
            human(held),
            human(limit)
        );
    }
}

/// A line for the end of a run when the limit refused writes.
pub(crate) fn refusals_report() -> Option<String> {
    let refused = mirage_core::content_refusals();
    let limit = mirage_core::content_limit()?;
    (refused > 0).then(|| {
        format!(
            "{refused} write(s) failed with ENOSPC: the sessions reached the limit of {} on what mirage-run \
             holds in memory (--max-memory SIZE raises it)",
            human(limit)
        )
    })
}

/// `bytes` in the largest binary unit that keeps it whole, as `--max-memory` reads it, or
/// to a tenth in MiB where none does and it is that large.
fn human(bytes: u64) -> String {
    let whole = [(40, "T"), (30, "G"), (20, "M"), (10, "K")]
        .into_iter()
        .find(|(shift, _)| bytes >= 1 << shift && bytes.is_multiple_of(1 << shift));
    match whole {
        Some((shift, unit)) => format!("{}{unit}", bytes >> shift),
        None if bytes >= 1 << 20 => format!("{:.1}M", bytes as f64 / f64::from(1 << 20)),
        None => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_bytes_with_binary_units() {
        assert_eq!(parse("4096").unwrap(), Some(4096));
        assert_eq!(parse("512M").unwrap(), Some(512 << 20));
        assert_eq!(parse("8g").unwrap(), Some(8 << 30));
        assert_eq!(parse("1T").unwrap(), Some(1 << 40));
        assert_eq!(parse("none").unwrap(), None);
        for wrong in ["", "G", "0", "12X", "-1G", "1.5G", "99999999999T"] {
            assert!(parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn the_default_is_half_the_machine_or_less() {
        let limit = default_limit().expect("/proc/meminfo");
        // SAFETY: sysinfo fills the struct it is given.
        let ram = unsafe {
            let mut info: libc::sysinfo = std::mem::zeroed();
            assert_eq!(libc::sysinfo(&mut info), 0);
            info.totalram as u64 * u64::from(info.mem_unit)
        };
        assert!(limit <= ram / 2 + 4096, "{limit} of {ram}");
        assert!(cgroup_limit().is_some() || limit + 4096 >= ram / 2, "{limit} of {ram}");
    }

    #[test]
    fn sizes_print_as_they_are_given() {
        assert_eq!(human(8 << 20), "8M");
        assert_eq!(human(3 << 30), "3G");
        assert_eq!(human(1536 << 10), "1536K");
        assert_eq!(human(1000), "1000 bytes");
        assert_eq!(human((3 << 20) + 1000), "3.0M");
    }
}
