//! Any other OS: nothing is read; the profile's defaults are shown as such.

use super::{build, HostReport};
use crate::model::{host::host_profile, Profile};

pub(super) fn collect() -> anyhow::Result<HostReport> {
    match host_profile() {
        Profile::Custom => anyhow::bail!(
            "portlab inspect cannot read this OS's settings ({}) and has no defaults for it; \
             use portlab predict --profile custom --port-range LO-HI --time-wait T",
            std::env::consts::OS
        ),
        profile => Ok(build::defaults_report(profile, crate::sys::nofile_limit())),
    }
}
