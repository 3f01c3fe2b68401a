//! Free text and COPY data, with a planted value in the middle; the properties live in
//! `sluice_mask::oracle::mask_text`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_mask::oracle::mask_text(data));
