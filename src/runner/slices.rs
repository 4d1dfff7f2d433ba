//! Per-socket port slices: how a large port range is exhausted at its real size.
//!
//! Why: connect() without bind() searches the whole ephemeral range for a free port
//! (`__inet_hash_connect`, one parity first). Once half the range is held, every connect walks
//! about P/2 ports, and one that fails walks all of them: at 16,384 or 28,232 ports the
//! kernel's search, not the load, sets the pace (3,575 of 6,000 starts/s; 1,500 failing
//! connects/s). Linux 6.3+ lets each socket narrow its own range with IP_LOCAL_PORT_RANGE
//! (IPPROTO_IP 51, value `hi << 16 | lo`); connect() then searches that slice alone, with the
//! same allocator and the same failure (EADDRNOTAVAIL at connect) once the slice is full. A
//! socket given a 64-port slice walks at most 64 ports. (One Python loop filled 16,384 ports
//! in 4.40 s with the global search, 0.70 s with 256-port slices. portlab at 20,000 starts/s
//! on 16,384 ports spent about half the system time with 64-port slices that it did with 256
//! once exhausted, where every connect fails after walking its whole slice; smaller slices
//! than 64 gained nothing measurable.)
//!
//! Keeping the model exact: the slices cover the range exactly (no port left out, none
//! twice), and attempt i (counting from 1) gets slice (i - 1) mod S, so the slices fill
//! together. With P = q x S + r ports, the first r slices hold q + 1 ports and the rest q:
//! slice k (0-based) is full after its last port and its next attempt is number
//! k + 1 + S x size(k). For a slice of q + 1 ports that is k + 1 + S x (q + 1) > P + 1; for
//! the first slice of q ports (k = r) it is r + 1 + S x q = P + 1. So the first attempt that
//! finds no port is number P + 1, due at P / R, as with the global search. (Larger slices
//! last would let a small one fill first: attempt P + 1 - r.) A slice's ports come free again
//! one hold after they were taken, in the order they were taken, so the post-exhaustion rate
//! stays P / hold.
//!
//! Not used (the global search instead): below [`MIN_PORTS`] ports, where the search is cheap
//! and measured exact; with several destinations or source addresses (a port is per 4-tuple
//! there, and the round robin over them would pick slices unevenly); with reserved ports in
//! the range (the kernel skips them, so slices would differ in size); where the kernel lacks
//! the option (before 6.3, or not Linux: the run says so); or with PORTLAB_PORT_SLICES=off.

/// Ports per slice (the last slices may hold one less; see the module docs).
pub const SLICE_PORTS: u32 = 64;

/// Smallest range that is sliced: below it connect()'s global search costs little.
pub const MIN_PORTS: u32 = 1024;

/// The environment variable that turns slices off (`off`) or sets their size (a number).
pub const ENV: &str = "PORTLAB_PORT_SLICES";

/// A port range cut into slices that cover it exactly, larger ones first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slices {
    /// (lo, hi) of each slice, inclusive.
    bounds: Vec<(u16, u16)>,
}

impl Slices {
    /// `lo..=hi` cut into ceil(P / size) slices of q + 1 or q ports, the larger first.
    /// None for an empty range or a zero size.
    pub fn cover(lo: u16, hi: u16, size: u32) -> Option<Slices> {
        if hi < lo || size == 0 {
            return None;
        }
        let ports = u32::from(hi) - u32::from(lo) + 1;
        let count = ports.div_ceil(size);
        let (q, r) = (ports / count, ports % count);
        let mut bounds = Vec::with_capacity(count as usize);
        let mut next = u32::from(lo);
        for k in 0..count {
            let len = q + u32::from(k < r);
            // Within lo..=hi, so both ends fit a u16.
            bounds.push((next as u16, (next + len - 1) as u16));
            next += len;
        }
        Some(Slices { bounds })
    }

    /// The slice of attempt `seq` (counting from 1): slice (seq - 1) mod S.
    pub fn for_attempt(&self, seq: u64) -> (u16, u16) {
        let k = seq.saturating_sub(1) % self.bounds.len() as u64;
        self.bounds[k as usize]
    }

    /// How many slices.
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Never true: a cover has at least one slice.
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }
}

/// What PORTLAB_PORT_SLICES asks for: None = off, Some(size).
pub fn wanted_size(env: Option<&str>) -> Result<Option<u32>, String> {
    match env.map(str::trim) {
        None | Some("") | Some("on") => Ok(Some(SLICE_PORTS)),
        Some("off") | Some("0") => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "{ENV}={v}: write off, on, or a slice size in ports (e.g. 256)"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attempts 1.. fill the slices; the first one whose slice is already full.
    fn first_failing_attempt(s: &Slices) -> u64 {
        let mut free: Vec<u32> = s
            .bounds
            .iter()
            .map(|(lo, hi)| u32::from(*hi) - u32::from(*lo) + 1)
            .collect();
        for seq in 1.. {
            let k = ((seq - 1) % free.len() as u64) as usize;
            if free[k] == 0 {
                return seq;
            }
            free[k] -= 1;
        }
        unreachable!()
    }

    #[test]
    fn slices_cover_the_range_exactly_and_fill_together() {
        // (lo, hi): the Windows 2008+ range, Linux's default, an uneven one, a tiny one.
        for (lo, hi) in [(49152, 65535), (32768, 60999), (40000, 41000), (1, 1)] {
            let s = Slices::cover(lo, hi, SLICE_PORTS).unwrap();
            let ports = u32::from(hi) - u32::from(lo) + 1;
            assert_eq!(s.bounds.first().unwrap().0, lo);
            assert_eq!(s.bounds.last().unwrap().1, hi);
            for w in s.bounds.windows(2) {
                assert_eq!(u32::from(w[0].1) + 1, u32::from(w[1].0), "contiguous");
                let len = |b: (u16, u16)| b.1 - b.0;
                assert!(len(w[0]) >= len(w[1]), "larger first: {w:?}");
            }
            assert!(s
                .bounds
                .iter()
                .all(|(a, b)| u32::from(*b) - u32::from(*a) < SLICE_PORTS));
            // The model's attempt: number P + 1 is the first to find no port.
            assert_eq!(first_failing_attempt(&s), u64::from(ports) + 1, "{lo}-{hi}");
        }
        // 28,232 ports in 256-port slices: 111 slices, 38 of 255 ports and 73 of 254.
        let s = Slices::cover(32768, 60999, 256).unwrap();
        assert_eq!(s.len(), 111);
        assert_eq!(s.for_attempt(1), (32768, 33022));
        assert_eq!(s.for_attempt(112), (32768, 33022), "round robin");
        assert_eq!(first_failing_attempt(&s), 28232 + 1);
    }

    #[test]
    fn smaller_slices_first_would_fail_early() {
        // The order matters: reversed, a small slice fills r attempts before P + 1.
        let mut s = Slices::cover(40000, 41000, 256).unwrap(); // 1001 = 251 + 3 x 250
        s.bounds.reverse();
        assert_eq!(first_failing_attempt(&s), 1001 + 1 - 1);
    }

    #[test]
    fn the_environment_turns_slices_off_or_sizes_them() {
        assert_eq!(wanted_size(None), Ok(Some(SLICE_PORTS)));
        assert_eq!(wanted_size(Some("off")), Ok(None));
        assert_eq!(wanted_size(Some("64")), Ok(Some(64)));
        assert!(wanted_size(Some("lots")).unwrap_err().contains(ENV));
        assert_eq!(Slices::cover(10, 9, 256), None);
        assert_eq!(Slices::cover(10, 20, 0), None);
    }
}
