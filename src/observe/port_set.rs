//! A set of TCP ports: one bit per port, 8 KiB, reused across samples. Written by hand: a
//! fixed 65,536-bit array with a ranged count is a few lines, and no bit-set crate is worth
//! its weight for it.

use crate::plan::PortRange;

/// A 65,536-bit set of ports.
#[derive(Debug, Clone)]
pub struct PortSet(Box<[u64; 1024]>);

impl Default for PortSet {
    fn default() -> PortSet {
        PortSet::new()
    }
}

impl PortSet {
    /// The empty set.
    pub fn new() -> PortSet {
        PortSet(Box::new([0; 1024]))
    }

    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.0.fill(0);
    }

    /// Adds `port`; true when it was not in the set yet.
    #[inline]
    pub fn insert(&mut self, port: u16) -> bool {
        let (word, bit) = (usize::from(port >> 6), 1u64 << (port & 63));
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }

    /// Whether `port` is in the set.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }

    /// How many ports of `range` are in the set.
    pub fn count_in(&self, range: PortRange) -> u32 {
        let (lo, hi) = (usize::from(range.lo), usize::from(range.hi));
        let mut n = 0;
        for w in lo >> 6..=hi >> 6 {
            let mut word = self.0[w];
            if w == lo >> 6 {
                word &= !0u64 << (lo & 63);
            }
            if w == hi >> 6 {
                word &= !0u64 >> (63 - (hi & 63));
            }
            n += word.count_ones();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_says_whether_a_port_is_new_and_ranges_count_their_own() {
        let mut s = PortSet::new();
        assert!(s.insert(0) && s.insert(63) && s.insert(64) && s.insert(65535));
        assert!(!s.insert(64));
        assert!(s.contains(63) && !s.contains(62));
        assert_eq!(s.count_in(PortRange { lo: 0, hi: 65535 }), 4);
        assert_eq!(s.count_in(PortRange { lo: 63, hi: 64 }), 2);
        assert_eq!(s.count_in(PortRange { lo: 1, hi: 62 }), 0);
        s.clear();
        assert_eq!(s.count_in(PortRange { lo: 0, hi: 65535 }), 0);
    }
}
