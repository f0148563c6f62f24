//! libFuzzer's entry for `fuzz_checks::post_body`: what it checks is documented there, and the
//! test command replays this target's corpus through the same function (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::post_body(data));
