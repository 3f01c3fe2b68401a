//! Prints libpg_query's parse tree for each SQL argument: a development aid for extending the
//! facts walker (`cargo run -p sluice-sql --example parse_tree -- "select 1"`).

fn main() {
    for sql in std::env::args().skip(1) {
        match pg_query::parse(&sql, 0) {
            Ok(tree) => println!("{:#?}", tree.protobuf),
            Err(e) => println!("error: {e}"),
        }
    }
}
