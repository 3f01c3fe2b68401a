//! One DataRow value: the first byte picks type OID, format, style and whether a column rule
//! names the column; the properties live in `sluice_mask::oracle::mask_value`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_mask::oracle::mask_value(data));
