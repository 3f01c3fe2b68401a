//! Prints the facts of each SQL argument and the verdict of each built-in profile:
//! `cargo run -p sluice-sql --example classify -- "delete from t where 1=1"`.

use sluice_sql::{GuardPolicy, Profile, classify};

fn main() {
    for sql in std::env::args().skip(1) {
        let facts = classify(&sql);
        println!("{sql}");
        for f in &facts {
            println!("  {f:#?}");
        }
        for profile in Profile::ALL {
            println!(
                "  {profile}: {:?}",
                GuardPolicy::new(profile).decide(&facts)
            );
        }
    }
}
