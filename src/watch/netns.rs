//! `watch --all-netns`, the portable part: which namespaces a /proc listing holds (one
//! representative process each, [`representatives`]), and what a process's cgroup path says
//! about it ([`cgroup_v2_path`], [`container_of`]): the labels of each namespace
//! ([`NsLabels`]). Pure functions over text; the Linux part that lists /proc and enters the
//! namespaces is `allns.rs`.

use std::collections::BTreeMap;

use serde::Serialize;

/// What is known of one network namespace: its identity, the process that stands for it
/// and what that process's cgroup says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsLabels {
    /// The namespace as the kernel names it (readlink /proc/PID/ns/net): `net:[INODE]`.
    pub netns: String,
    /// The inode of the namespace file (stat's st_ino), the key namespaces are told apart by.
    pub inode: u64,
    /// The node's own namespace: pid 1's (portlab's own when pid 1's cannot be read).
    pub host: bool,
    /// The lowest pid in the namespace, its representative.
    pub pid: u32,
    /// That process's name (/proc/PID/comm).
    pub comm: String,
    /// Its cgroup v2 path (the `0::` line of /proc/PID/cgroup), when there is one.
    pub cgroup: Option<String>,
    /// The container ID, when the cgroup path is a container runtime's (containerd, CRI-O,
    /// Docker, Podman). In a Kubernetes pod the lowest pid is usually the pause
    /// (sandbox) container, whose ID this is.
    pub container_id: Option<String>,
    /// The Kubernetes pod UID, when the cgroup path is a kubelet's (`kubepods...`): join it
    /// with kube-state-metrics' `kube_pod_info{uid=...}` for the pod's name and namespace.
    pub pod_uid: Option<String>,
}

impl NsLabels {
    /// Labels from what is known of the representative: `cgroup_file` is the text of
    /// /proc/PID/cgroup (None when unreadable).
    pub fn new(inode: u64, host: bool, pid: u32, comm: &str, cgroup_file: Option<&str>) -> Self {
        let cgroup = cgroup_file.and_then(cgroup_v2_path);
        let (container_id, pod_uid) = cgroup.as_deref().map(container_of).unwrap_or_default();
        NsLabels {
            netns: format!("net:[{inode}]"),
            inode,
            host,
            pid,
            comm: comm.trim().to_string(),
            cgroup,
            container_id,
            pod_uid,
        }
    }

    /// One line for people: `net:[I] (host) pid P comm, pod U, container C`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}{} pid {} {}",
            self.netns,
            if self.host { " (host)" } else { "" },
            self.pid,
            self.comm
        );
        if let Some(p) = &self.pod_uid {
            s += &format!(", pod {p}");
        }
        if let Some(c) = &self.container_id {
            s += &format!(", container {}", &c[..c.len().min(12)]);
        }
        if self.pod_uid.is_none() && self.container_id.is_none() {
            if let Some(g) = &self.cgroup {
                s += &format!(", cgroup {g}");
            }
        }
        s
    }

    /// The Prometheus labels every series of this namespace gains (no trailing comma);
    /// unknown ones are empty, which Prometheus reads as absent.
    pub fn prometheus(&self) -> String {
        let l = super::render::label;
        format!(
            "netns=\"{}\",host=\"{}\",pid=\"{}\",comm=\"{}\",cgroup=\"{}\",container_id=\"{}\",pod_uid=\"{}\"",
            l(&self.netns),
            self.host,
            self.pid,
            l(&self.comm),
            l(self.cgroup.as_deref().unwrap_or("")),
            l(self.container_id.as_deref().unwrap_or("")),
            l(self.pod_uid.as_deref().unwrap_or("")),
        )
    }
}

/// The namespaces of a /proc listing, (pid, namespace inode) pairs in any order: each
/// namespace once, with the lowest pid in it as its representative (the oldest process,
/// usually: a pod's pause container, a container's init), ordered by inode.
pub fn representatives(listing: impl IntoIterator<Item = (u32, u64)>) -> BTreeMap<u64, u32> {
    let mut out: BTreeMap<u64, u32> = BTreeMap::new();
    for (pid, inode) in listing {
        out.entry(inode)
            .and_modify(|p| *p = (*p).min(pid))
            .or_insert(pid);
    }
    out
}

/// The cgroup v2 path of a /proc/PID/cgroup text: its `0::PATH` line (on a hybrid host,
/// the other lines are v1 hierarchies). None when there is none, or when it is `/` alone.
pub fn cgroup_v2_path(file: &str) -> Option<String> {
    file.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
}

/// A container ID: at least 12 hex digits.
fn container_id(s: &str) -> Option<&str> {
    (s.len() >= 12 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// A pod UID as the cgroup writes it (systemd escapes its dashes as underscores): hex and
/// dashes, at least 8 long; returned with dashes.
fn pod_uid(s: &str) -> Option<String> {
    let uid = s.replace('_', "-");
    (uid.len() >= 8 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(uid)
}

/// (container ID, pod UID) from a cgroup path, where the container runtime's pattern says
/// so; each None otherwise. Recognised, with the systemd and the cgroupfs drivers:
/// - kubelet + containerd: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID>.slice/cri-containerd-<ID>.scope`,
///   `/kubepods/burstable/pod<UID>/<ID>`, and containerd's `...-pod<UID>.slice:cri-containerd:<ID>`;
/// - kubelet + CRI-O: `.../kubepods-pod<UID>.slice/crio-<ID>.scope` (`crio-conmon-<ID>` is
///   the container's monitor, also named by that ID);
/// - Docker: `/docker/<ID>`, `/system.slice/docker-<ID>.scope`; Podman: `libpod-<ID>.scope`.
pub fn container_of(path: &str) -> (Option<String>, Option<String>) {
    let kube = path.contains("kubepods");
    let mut container = None;
    let mut pod = None;
    let segments: Vec<&str> = path.split(['/', ':']).filter(|s| !s.is_empty()).collect();
    for (i, seg) in segments.iter().enumerate() {
        let bare = seg
            .strip_suffix(".scope")
            .or_else(|| seg.strip_suffix(".slice"))
            .unwrap_or(seg);
        if kube {
            // kubepods-burstable-pod<UID>.slice (systemd) or pod<UID> (cgroupfs).
            let uid = bare
                .rsplit_once("-pod")
                .map(|(_, u)| u)
                .or_else(|| bare.strip_prefix("pod"));
            if let Some(uid) = uid.and_then(pod_uid) {
                pod = Some(uid);
                continue;
            }
        }
        for prefix in [
            "cri-containerd-",
            "crio-conmon-",
            "crio-",
            "docker-",
            "libpod-",
        ] {
            if let Some(id) = bare.strip_prefix(prefix).and_then(container_id) {
                container = Some(id.to_string());
            }
        }
        // cgroupfs layouts: /docker/<ID>, /kubepods/.../pod<UID>/<ID>, and containerd's
        // `slice:cri-containerd:<ID>`.
        let parent = i.checked_sub(1).map(|j| segments[j]);
        let after_runtime = matches!(parent, Some("docker" | "cri-containerd" | "crio"));
        let after_pod = kube && parent.is_some_and(|p| p.starts_with("pod"));
        if after_runtime || after_pod {
            if let Some(id) = container_id(bare) {
                container = Some(id.to_string());
            }
        }
    }
    (container, pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8e9f7c3a1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2a3b";
    const UID: &str = "1f2e3d4c-5b6a-4789-9abc-def012345678";

    #[test]
    fn container_and_pod_from_real_looking_cgroup_paths() {
        let uid_ = UID.replace('-', "_");
        let cases: Vec<(String, Option<&str>, Option<&str>)> = vec![
            // kubelet (systemd driver) + containerd.
            (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"), Some(ID), Some(UID)),
            // Guaranteed QoS: no QoS slice.
            (format!("/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope"), Some(ID), Some(UID)),
            // containerd's own systemd-less form.
            (format!("/system.slice/containerd.service/kubepods-besteffort-pod{uid_}.slice:cri-containerd:{ID}"), Some(ID), Some(UID)),
            // kubelet (cgroupfs driver).
            (format!("/kubepods/burstable/pod{UID}/{ID}"), Some(ID), Some(UID)),
            (format!("/kubepods/pod{UID}/{ID}"), Some(ID), Some(UID)),
            // CRI-O.
            (format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope"), Some(ID), Some(UID)),
            // The pod's slice alone (a process of the pod, no container scope).
            (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"), None, Some(UID)),
            // Docker, cgroupfs and systemd drivers; Podman.
            (format!("/docker/{ID}"), Some(ID), None),
            (format!("/system.slice/docker-{ID}.scope"), Some(ID), None),
            (format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"), Some(ID), None),
            // Not a container: a service, a user session, the root.
            ("/system.slice/ssh.service".into(), None, None),
            ("/user.slice/user-1000.slice/session-3.scope".into(), None, None),
            ("/init.scope".into(), None, None),
            // "docker.service" is not a container, nor is a short name after docker/.
            ("/system.slice/docker.service".into(), None, None),
            ("/docker/abc".into(), None, None),
            // kubepods' QoS slices are not pods.
            ("/kubepods.slice/kubepods-burstable.slice".into(), None, None),
        ];
        for (path, container, pod) in cases {
            let (c, p) = container_of(&path);
            assert_eq!(c.as_deref(), container, "container of {path}");
            assert_eq!(p.as_deref(), pod, "pod of {path}");
        }
    }

    #[test]
    fn the_cgroup_v2_line_is_taken_on_hybrid_hosts() {
        let hybrid = format!(
            "12:memory:/kubepods/burstable/pod{UID}/{ID}\n1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n0::/kubepods/burstable/pod{UID}/{ID}\n"
        );
        let path = cgroup_v2_path(&hybrid).expect("0:: line");
        assert_eq!(path, format!("/kubepods/burstable/pod{UID}/{ID}"));
        assert_eq!(cgroup_v2_path("4:memory:/x\n1:cpu:/\n"), None);
        assert_eq!(cgroup_v2_path("0::\n"), None);
        let l = NsLabels::new(4026532999, false, 812, "pause\n", Some(&hybrid));
        assert_eq!(l.netns, "net:[4026532999]");
        assert_eq!(l.comm, "pause");
        assert_eq!(l.container_id.as_deref(), Some(ID));
        assert_eq!(l.pod_uid.as_deref(), Some(UID));
        let host = NsLabels::new(4026531840, true, 1, "systemd", Some("0::/init.scope\n"));
        assert_eq!(
            host.prometheus(),
            "netns=\"net:[4026531840]\",host=\"true\",pid=\"1\",comm=\"systemd\",cgroup=\"/init.scope\",container_id=\"\",pod_uid=\"\""
        );
    }

    #[test]
    fn one_namespace_per_inode_with_its_lowest_pid() {
        // A fake /proc listing in readdir order (not sorted): pid -> namespace inode.
        let listing = [
            (4242, 4026532500),
            (1, 4026531840),
            (977, 4026532500),
            (35, 4026531840),
            (2001, 4026532611),
            (1500, 4026532500),
            (3, 4026531840),
        ];
        let reps = representatives(listing);
        let want: Vec<(u64, u32)> = vec![(4026531840, 1), (4026532500, 977), (4026532611, 2001)];
        assert_eq!(reps.into_iter().collect::<Vec<_>>(), want);
        assert!(representatives([]).is_empty());
    }
}
