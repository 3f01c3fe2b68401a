//! Query-phase messages the enforcing proxy reads, and the DataRow rewriter masking uses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_engine_postgres::codec::oracle::query_messages(data);
});
