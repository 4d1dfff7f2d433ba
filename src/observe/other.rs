//! Not Linux: no TIME_WAIT listing or TCP counters are read; every figure is "not observed".

use std::net::SocketAddr;

use super::KernelSample;

pub(crate) struct Sampler {
    target: SocketAddr,
}

impl Sampler {
    pub(crate) fn new(target: SocketAddr) -> Sampler {
        Sampler { target }
    }

    pub(crate) fn target(&self) -> SocketAddr {
        self.target
    }

    pub(crate) fn sample(&mut self) -> KernelSample {
        KernelSample::default()
    }
}
