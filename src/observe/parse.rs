//! Pure parsers for the /proc/net files the observer reads. They take text and return
//! values, so they are tested on captured text and work on any OS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The `tw` figure of the `TCP:` line of /proc/net/sockstat
/// ("TCP: inuse 1 orphan 0 tw 3 alloc 3 mem 220").
pub fn parse_sockstat_tw(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let mut tokens = line.split_whitespace();
    while let Some(key) = tokens.next() {
        let value = tokens.next()?;
        if key == "tw" {
            return value.parse().ok();
        }
    }
    None
}

/// Walks one section of /proc/net/snmp or /proc/net/netstat, where a section is a header
/// line of names and a line of values, both starting with "<section>:". Calls `f(name,
/// value)` for each pair; values that are not unsigned integers (MaxConn is -1) are skipped.
/// Returns false when the section is missing or its two lines disagree in length.
pub fn parse_table(text: &str, section: &str, mut f: impl FnMut(&str, u64)) -> bool {
    let mut lines = text.lines().filter_map(|l| {
        l.strip_prefix(section)
            .and_then(|rest| rest.strip_prefix(':'))
    });
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return false;
    };
    if names.split_whitespace().count() != values.split_whitespace().count() {
        return false;
    }
    for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
        if let Ok(v) = value.parse::<u64>() {
            f(name, v);
        }
    }
    true
}

/// One socket line of /proc/net/tcp or /proc/net/tcp6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcTcpEntry {
    /// TCP state as in include/net/tcp_states.h (1 ESTABLISHED, 6 TIME_WAIT, 10 LISTEN).
    pub state: u8,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
}

/// Parses one socket line ("   1: 0100007F:2382 0100007F:A4B4 06 ..."); None for the header
/// or anything malformed. Addresses are printed by the kernel as the in-memory 32-bit words
/// in hex (so native byte order), ports as host-order hex.
pub fn parse_proc_net_tcp_line(line: &str) -> Option<ProcTcpEntry> {
    let mut t = line.split_whitespace();
    let slot = t.next()?;
    if !slot.ends_with(':') {
        return None;
    }
    let local = parse_hex_endpoint(t.next()?)?;
    let remote = parse_hex_endpoint(t.next()?)?;
    let state = u8::from_str_radix(t.next()?, 16).ok()?;
    Some(ProcTcpEntry {
        state,
        local,
        remote,
    })
}

fn parse_hex_endpoint(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => {
            let word = u32::from_str_radix(addr, 16).ok()?;
            IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes()))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on Linux 6.18 (x86_64) in a private namespace: a v4 client closing first
    // toward [::]:8080, a server closing first on 127.0.0.1:9090, a v6 client toward [::1]:8080.
    const SOCKSTAT: &str = "sockets: used 4\nTCP: inuse 1 orphan 0 tw 3 alloc 3 mem 220\n\
                            UDP: inuse 0 mem 0\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10440 1 000000008cefbc9b 100 0 0 10 0
   1: 0100007F:2382 0100007F:A4B4 06 00000000:00000000 03:00001770 00000000     0        0 0 3 000000005b69f58b
   2: 0100007F:D782 0100007F:1F90 06 00000000:00000000 03:0000176F 00000000     0        0 0 3 00000000c0036be6
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11284 1 000000000aafd97f 100 0 0 10 0
   1: 00000000000000000000000001000000:DC84 00000000000000000000000001000000:1F90 06 00000000:00000000 03:0000176F 00000000     0        0 0 3 0000000089e94c14
";
    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 5000
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 17 2 0 5 0 5134 2403 0 0 11 0
Udp: InDatagrams NoPorts
Udp: 3 4
";
    const NETSTAT: &str = "TcpExt: SyncookiesSent TW TWRecycled TWKilled ListenOverflows ListenDrops TCPAbortOnData TCPTimeWaitOverflow
TcpExt: 0 10 3 1 7 8 9 2
IpExt: InNoRoutes InOctets
IpExt: 0 123456
";

    #[test]
    fn sockstat_tw() {
        assert_eq!(parse_sockstat_tw(SOCKSTAT), Some(3));
        assert_eq!(parse_sockstat_tw("TCP: inuse 1 orphan 0\n"), None);
        assert_eq!(parse_sockstat_tw(""), None);
    }

    #[test]
    fn snmp_tcp_section() {
        let mut got = Vec::new();
        assert!(parse_table(SNMP, "Tcp", |n, v| got.push((n.to_string(), v))));
        let get = |name: &str| got.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(get("ActiveOpens"), Some(17));
        assert_eq!(get("PassiveOpens"), Some(2));
        assert_eq!(get("EstabResets"), Some(5));
        assert_eq!(get("InSegs"), Some(5134));
        assert_eq!(get("OutSegs"), Some(2403));
        assert_eq!(get("OutRsts"), Some(11));
        // MaxConn is -1: skipped, not misread.
        assert_eq!(get("MaxConn"), None);
        // "Tcp" must not match "TcpExt" or the Udp section.
        assert!(!parse_table(NETSTAT, "Tcp", |_, _| {}));
        assert!(!parse_table("Tcp: A B\nTcp: 1\n", "Tcp", |_, _| {}));
    }

    #[test]
    fn netstat_tcpext_section() {
        let mut tw = None;
        let mut overflow = None;
        let mut octets = None;
        assert!(parse_table(NETSTAT, "TcpExt", |n, v| match n {
            "TW" => tw = Some(v),
            "TCPTimeWaitOverflow" => overflow = Some(v),
            _ => {}
        }));
        assert!(parse_table(NETSTAT, "IpExt", |n, v| if n == "InOctets" {
            octets = Some(v)
        }));
        assert_eq!((tw, overflow, octets), (Some(10), Some(2), Some(123456)));
    }

    #[test]
    #[cfg(target_endian = "little")] // the captured text came from a little-endian machine
    fn proc_net_tcp_lines() {
        let entries: Vec<_> = TCP.lines().filter_map(parse_proc_net_tcp_line).collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].state, 0x0A);
        assert_eq!(entries[0].local, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(entries[1].state, 6);
        assert_eq!(entries[1].remote, "127.0.0.1:42164".parse().unwrap());
        assert_eq!(entries[2].local, "127.0.0.1:55170".parse().unwrap());
        assert_eq!(entries[2].remote, "127.0.0.1:8080".parse().unwrap());

        let entries6: Vec<_> = TCP6.lines().filter_map(parse_proc_net_tcp_line).collect();
        assert_eq!(entries6.len(), 2);
        assert_eq!(entries6[0].local, "[::]:8080".parse().unwrap());
        assert_eq!(entries6[1].state, 6);
        assert_eq!(entries6[1].local, "[::1]:56452".parse().unwrap());
        assert_eq!(entries6[1].remote, "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn proc_net_tcp_rejects_garbage() {
        assert_eq!(parse_proc_net_tcp_line(""), None);
        assert_eq!(
            parse_proc_net_tcp_line("   0: 0100007F 00000000:0000 0A"),
            None
        );
        assert_eq!(
            parse_proc_net_tcp_line("   0: 0100007F:2382 0100:0000 0A"),
            None
        );
        assert_eq!(
            parse_proc_net_tcp_line("   0: 0100007F:2382 00000000:0000 ZZ"),
            None
        );
    }
}
