//! `portlab run` flags (NUL-separated) through clap, the overlay and plan resolution.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<String> = text.split('\0').map(str::to_string).collect();
    let _ = portlab::fuzz::run_flags(&args, None);
});
