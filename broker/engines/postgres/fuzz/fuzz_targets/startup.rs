//! Untagged startup packets; the properties live in `codec::oracle::startup`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_engine_postgres::codec::oracle::startup(data));
