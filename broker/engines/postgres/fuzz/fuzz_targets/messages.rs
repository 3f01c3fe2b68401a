//! Tagged messages and every decoder; the properties live in `codec::oracle::messages`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_engine_postgres::codec::oracle::messages(data));
