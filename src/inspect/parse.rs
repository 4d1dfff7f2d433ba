//! Pure parsers for what `portlab inspect` reads on each OS: `netsh int ipv4 show
//! dynamicport tcp`, `reg query`, `sysctl` and `netstat -an`. No I/O and no `cfg`: they
//! compile everywhere and are tested on Linux with sample text.

use std::collections::BTreeMap;

use crate::model::host::DynamicPorts;

/// Parses `netsh int ipv4 show dynamicport tcp`:
///
/// ```text
/// Protocol tcp Dynamic Port Range
/// ---------------------------------
/// Start Port      : 49152
/// Number of Ports : 16384
/// ```
///
/// The labels are localized on non-English Windows, so when "Start Port" / "Number of
/// Ports" are not found the first two `label : number` lines are taken, in that order.
/// None when there are no two such numbers, or the start port is 0.
pub fn parse_netsh_dynamicport(text: &str) -> Option<DynamicPorts> {
    let numbers: Vec<(String, u32)> = text
        .lines()
        .filter_map(|line| {
            let (label, value) = line.split_once(':')?;
            let n = value.trim().parse::<u32>().ok()?;
            Some((label.trim().to_ascii_lowercase(), n))
        })
        .collect();
    let labelled = |needle: &str| {
        numbers
            .iter()
            .find(|(l, _)| l.starts_with(needle))
            .map(|&(_, n)| n)
    };
    let (start, count) = match (labelled("start port"), labelled("number of ports")) {
        (Some(s), Some(c)) => (s, c),
        _ if numbers.len() >= 2 => (numbers[0].1, numbers[1].1),
        _ => return None,
    };
    let start = u16::try_from(start).ok().filter(|&s| s > 0)?;
    (count > 0).then_some(DynamicPorts { start, count })
}

/// Parses `netsh int ipv4 show excludedportrange protocol=tcp`: the port ranges reserved
/// (Hyper-V, WinNAT, `add excludedportrange`), which the dynamic range never hands out.
///
/// ```text
/// Start Port    End Port
/// ----------    --------
///       5357        5357
///      50000       50059     *
/// ```
///
/// Every line whose first two words are ports, LO <= HI (a trailing `*` marks an
/// administered exclusion and is ignored).
pub fn parse_netsh_excluded(text: &str) -> Vec<(u16, u16)> {
    text.lines()
        .filter_map(|line| {
            let mut tokens = line.split_whitespace();
            let lo = tokens.next()?.parse::<u16>().ok()?;
            let hi = tokens.next()?.parse::<u16>().ok()?;
            match tokens.next() {
                None | Some("*") => (lo <= hi && lo > 0).then_some((lo, hi)),
                Some(_) => None,
            }
        })
        .collect()
}

/// A REG_DWORD value from `reg query KEY` (or `reg query KEY /v NAME`) output, whose value
/// lines read `    MaxUserPort    REG_DWORD    0x1388`. The name is matched ignoring case,
/// the value is hexadecimal with `0x` (as reg prints it) or decimal.
///
/// `Ok(None)`: the value is absent (not in the output, or reg said it cannot find it).
/// `Err`: the value is there but is not a REG_DWORD number (the line, for the message).
pub fn parse_reg_dword(text: &str, name: &str) -> Result<Option<u32>, String> {
    for line in text.lines() {
        let mut tokens = line.split_whitespace();
        let (Some(n), Some(kind)) = (tokens.next(), tokens.next()) else {
            continue;
        };
        if !n.eq_ignore_ascii_case(name) || !kind.starts_with("REG_") {
            continue;
        }
        let raw = tokens.next().unwrap_or("");
        let parsed = match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => raw.parse::<u32>().ok(),
        };
        return match (kind, parsed) {
            ("REG_DWORD", Some(v)) => Ok(Some(v)),
            _ => Err(format!("{name} is not a REG_DWORD number: {}", line.trim())),
        };
    }
    Ok(None)
}

/// `sysctl` output as name -> value: macOS and BSD print `name: value`, Linux `name = value`.
/// Lines that are neither (errors, blank) are skipped.
pub fn parse_sysctl(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line
                .split_once(" = ")
                .or_else(|| line.split_once(": "))
                .or_else(|| line.split_once(':'))?;
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) || !name.contains('.') {
                return None;
            }
            Some((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// TCP sockets by state in `netstat -an` output (Windows `  TCP    10.0.0.1:50000
/// 10.0.0.2:443    TIME_WAIT`, macOS `tcp4  0  0  10.0.0.1.50000  10.0.0.2.443
/// TIME_WAIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetstatCounts {
    /// Sockets in TIME_WAIT.
    pub time_wait: u64,
    /// Sockets in ESTABLISHED.
    pub established: u64,
}

/// Counts TCP lines of `netstat -an` by their last word (the state). None when no TCP line
/// has a state this parser knows (e.g. states translated on a localized Windows), so a
/// count of 0 is never made up.
pub fn parse_netstat_states(text: &str) -> Option<NetstatCounts> {
    const KNOWN: [&str; 11] = [
        "LISTEN",
        "LISTENING",
        "ESTABLISHED",
        "TIME_WAIT",
        "CLOSE_WAIT",
        "SYN_SENT",
        "SYN_RECEIVED",
        "FIN_WAIT_1",
        "FIN_WAIT_2",
        "LAST_ACK",
        "CLOSED",
    ];
    let mut counts = NetstatCounts::default();
    let mut recognised = false;
    for line in text.lines() {
        let mut tokens = line.split_whitespace();
        let Some(proto) = tokens.next() else {
            continue;
        };
        if !proto.to_ascii_lowercase().starts_with("tcp") {
            continue;
        }
        let Some(state) = tokens.last() else {
            continue;
        };
        if !KNOWN.contains(&state) {
            continue;
        }
        recognised = true;
        match state {
            "TIME_WAIT" => counts.time_wait += 1,
            "ESTABLISHED" => counts.established += 1,
            _ => {}
        }
    }
    recognised.then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSH: &str = "\r\nProtocol tcp Dynamic Port Range\r\n---------------------------------\r\nStart Port      : 49152\r\nNumber of Ports : 16384\r\n\r\n";

    #[test]
    fn netsh_default_range() {
        assert_eq!(
            parse_netsh_dynamicport(NETSH),
            Some(DynamicPorts {
                start: 49152,
                count: 16384
            })
        );
    }

    #[test]
    fn netsh_localized_labels_fall_back_to_order() {
        let de = "Protokoll tcp Dynamischer Portbereich\n-----------\nStartport       : 10000\nAnzahl der Ports: 1000\n";
        assert_eq!(
            parse_netsh_dynamicport(de),
            Some(DynamicPorts {
                start: 10000,
                count: 1000
            })
        );
    }

    #[test]
    fn netsh_errors_and_nonsense_give_none() {
        assert_eq!(parse_netsh_dynamicport(""), None);
        assert_eq!(
            parse_netsh_dynamicport(
                "The following command was not found: int ipv4 show dynamicport tcp."
            ),
            None
        );
        assert_eq!(
            parse_netsh_dynamicport("Start Port : 0\nNumber of Ports : 5"),
            None
        );
        assert_eq!(
            parse_netsh_dynamicport("Start Port : 70000\nNumber of Ports : 5"),
            None
        );
    }

    #[test]
    fn netsh_excluded_ranges() {
        let text = "\r\nProtocol tcp Port Exclusion Ranges\r\n\r\nStart Port    End Port\r\n----------    --------\r\n      5357        5357\r\n     50000       50059     *\r\n\r\n* - Administered port exclusions.\r\n";
        assert_eq!(
            parse_netsh_excluded(text),
            vec![(5357, 5357), (50000, 50059)]
        );
        assert!(parse_netsh_excluded("Start Port : 49152\nNumber of Ports : 16384").is_empty());
    }

    const REG: &str = "\r\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\r\n    NV Hostname    REG_SZ    build-01\r\n    MaxUserPort    REG_DWORD    0x1388\r\n    TcpTimedWaitDelay    REG_DWORD    0x1e\r\n    EnableDHCP    REG_DWORD    0x1\r\n\r\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\\Interfaces\r\n";

    #[test]
    fn reg_query_hex_dwords() {
        assert_eq!(parse_reg_dword(REG, "MaxUserPort"), Ok(Some(5000)));
        assert_eq!(parse_reg_dword(REG, "tcptimedwaitdelay"), Ok(Some(30)));
    }

    #[test]
    fn reg_query_absent_value_is_none() {
        assert_eq!(parse_reg_dword(REG, "TcpNumConnections"), Ok(None));
        let missing =
            "ERROR: The system was unable to find the specified registry key or value.\r\n";
        assert_eq!(parse_reg_dword(missing, "MaxUserPort"), Ok(None));
        assert_eq!(parse_reg_dword("", "MaxUserPort"), Ok(None));
    }

    #[test]
    fn reg_query_decimal_and_wrong_type() {
        assert_eq!(
            parse_reg_dword("    MaxUserPort    REG_DWORD    65534", "MaxUserPort"),
            Ok(Some(65534))
        );
        let err = parse_reg_dword("    MaxUserPort    REG_SZ    lots", "MaxUserPort").unwrap_err();
        assert!(
            err.contains("MaxUserPort") && err.contains("REG_SZ"),
            "{err}"
        );
    }

    #[test]
    fn sysctl_macos_and_linux_styles() {
        let mac = "net.inet.ip.portrange.first: 49152\nnet.inet.ip.portrange.last: 65535\nnet.inet.tcp.msl: 15000\nsysctl: unknown oid 'net.inet.tcp.nope'\n";
        let m = parse_sysctl(mac);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m["net.inet.ip.portrange.first"], "49152");
        assert_eq!(m["net.inet.tcp.msl"], "15000");
        let linux = parse_sysctl("net.ipv4.ip_local_port_range = 32768\t60999\n");
        assert_eq!(linux["net.ipv4.ip_local_port_range"], "32768\t60999");
    }

    #[test]
    fn netstat_counts_tcp_states_only() {
        let win = "\r\nActive Connections\r\n\r\n  Proto  Local Address          Foreign Address        State\r\n  TCP    0.0.0.0:135            0.0.0.0:0              LISTENING\r\n  TCP    10.0.0.5:50001         10.0.0.9:1433          TIME_WAIT\r\n  TCP    10.0.0.5:50002         10.0.0.9:1433          TIME_WAIT\r\n  TCP    10.0.0.5:50003         10.0.0.9:1433          ESTABLISHED\r\n  TCP    [::]:445               [::]:0                 LISTENING\r\n  UDP    0.0.0.0:123            *:*                    \r\n";
        assert_eq!(
            parse_netstat_states(win),
            Some(NetstatCounts {
                time_wait: 2,
                established: 1
            })
        );
        let mac = "Active Internet connections (including servers)\nProto Recv-Q Send-Q  Local Address          Foreign Address        (state)\ntcp4       0      0  10.0.0.5.50001         10.0.0.9.443           TIME_WAIT\ntcp6       0      0  *.22                   *.*                    LISTEN\n";
        assert_eq!(
            parse_netstat_states(mac),
            Some(NetstatCounts {
                time_wait: 1,
                established: 0
            })
        );
        let localized = "  TCP    10.0.0.5:50001         10.0.0.9:1433          WARTEND\r\n";
        assert_eq!(parse_netstat_states(localized), None);
    }
}
