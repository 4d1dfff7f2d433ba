//! The kernel memory TIME_WAIT sockets cost: the `tw_sock_TCP` slab cache of /proc/slabinfo
//! (one `struct inet_timewait_sock` per IPv4 TIME_WAIT socket). slabinfo is host-wide (not
//! per network namespace) and readable by root only, so a run reports the change over its
//! own span, or why it could not read it.

use serde::{Deserialize, Serialize};

/// The slab cache of IPv4 TCP TIME_WAIT sockets.
pub const TW_SLAB: &str = "tw_sock_TCP";

/// One cache's line of /proc/slabinfo (version 2.1):
/// `name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlabLine {
    /// Objects in use.
    pub active: u64,
    /// Objects allocated (in use or free in the cache's slabs).
    pub num: u64,
    /// Bytes per object.
    pub objsize: u64,
}

/// Finds cache `name` in the text of /proc/slabinfo (its name must match exactly:
/// `tw_sock_TCP` is not `tw_sock_TCPv6`).
pub fn parse_slabinfo(text: &str, name: &str) -> Option<SlabLine> {
    text.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        if f.next()? != name {
            return None;
        }
        let mut num = || f.next().and_then(|v| v.parse::<u64>().ok());
        Some(SlabLine {
            active: num()?,
            num: num()?,
            objsize: num()?,
        })
    })
}

/// Reads cache `name` from /proc/slabinfo, or says why it cannot.
pub fn read(name: &str) -> Result<SlabLine, String> {
    let text = std::fs::read_to_string("/proc/slabinfo").map_err(|e| {
        format!(
            "/proc/slabinfo cannot be read ({e}): it is readable by root only (in the initial user namespace), and absent outside Linux"
        )
    })?;
    parse_slabinfo(&text, name).ok_or_else(|| {
        format!("/proc/slabinfo has no {name} cache (the kernel merged it into another cache, e.g. with slab_merge)")
    })
}

/// `tw_slab` in summary.json: the TIME_WAIT slab over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlabSummary {
    /// The cache read (`tw_sock_TCP`).
    pub cache: String,
    /// Bytes per object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objsize: Option<u64>,
    /// Active objects when the run began (host-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_before: Option<u64>,
    /// Most active objects seen during the run (host-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_max: Option<u64>,
    /// (active_max - active_before) x objsize: what the run's TIME_WAIT cost in kernel
    /// memory at its most (other TIME_WAIT on the host moves it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why there is no figure, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Follows one cache over a run: a first reading, then the most active objects.
#[derive(Debug)]
pub struct SlabWatch {
    name: &'static str,
    before: Result<SlabLine, String>,
    max: Option<SlabLine>,
}

impl SlabWatch {
    /// Takes the first reading.
    pub fn start(name: &'static str) -> SlabWatch {
        SlabWatch {
            name,
            before: read(name),
            max: None,
        }
    }

    /// Takes one more reading (nothing when the first failed).
    pub fn sample(&mut self) {
        if self.before.is_err() {
            return;
        }
        if let Ok(now) = read(self.name) {
            if self.max.is_none_or(|m| now.active > m.active) {
                self.max = Some(now);
            }
        }
    }

    /// The figures for summary.json.
    pub fn summary(&self) -> SlabSummary {
        summarize(self.name, &self.before, self.max)
    }
}

/// The summary of a cache from its first reading and its largest one.
pub fn summarize(
    name: &str,
    before: &Result<SlabLine, String>,
    max: Option<SlabLine>,
) -> SlabSummary {
    let mut s = SlabSummary {
        cache: name.to_string(),
        ..SlabSummary::default()
    };
    match before {
        Err(why) => s.unavailable = Some(why.clone()),
        Ok(b) => {
            let max = max.map_or(b.active, |m| m.active.max(b.active));
            s.objsize = Some(b.objsize);
            s.active_before = Some(b.active);
            s.active_max = Some(max);
            s.bytes = Some((max - b.active) * b.objsize);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as Linux 6.18 prints them (slabinfo - version: 2.1).
    const SLABINFO: &str = "slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
tw_sock_TCPv6        112    176    256   16    1 : tunables    0    0    0 : slabdata     11     11      0
tw_sock_TCP        12160  12176    256   16    1 : tunables    0    0    0 : slabdata    761    761      0
TCP                  306    330   2432   13    8 : tunables    0    0    0 : slabdata     25     25      0
";

    #[test]
    fn finds_the_ipv4_cache_by_its_exact_name() {
        assert_eq!(
            parse_slabinfo(SLABINFO, TW_SLAB),
            Some(SlabLine {
                active: 12160,
                num: 12176,
                objsize: 256
            })
        );
        assert_eq!(
            parse_slabinfo(SLABINFO, "tw_sock_TCPv6").unwrap().active,
            112
        );
        assert_eq!(parse_slabinfo(SLABINFO, "tw_sock"), None);
        assert_eq!(parse_slabinfo("tw_sock_TCP  12 x 256", TW_SLAB), None);
    }

    #[test]
    fn the_cost_is_the_growth_times_the_object_size() {
        let line = |active| SlabLine {
            active,
            num: 20000,
            objsize: 256,
        };
        let s = summarize(TW_SLAB, &Ok(line(160)), Some(line(10160)));
        assert_eq!(s.bytes, Some(10_000 * 256));
        assert_eq!((s.active_before, s.active_max), (Some(160), Some(10160)));
        // Fewer than before (other sockets on the host ended): no negative cost.
        assert_eq!(
            summarize(TW_SLAB, &Ok(line(160)), Some(line(100))).bytes,
            Some(0)
        );
        let s = summarize(TW_SLAB, &Err("not root".into()), None);
        assert_eq!(
            (s.bytes, s.unavailable.as_deref()),
            (None, Some("not root"))
        );
    }
}
