//! summary.json bytes through every report format, alone and compared.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = portlab::fuzz::summary(data);
});
