//! A scenario file's bytes through plan resolution, plan.toml and the model.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = portlab::fuzz::scenario(data);
});
