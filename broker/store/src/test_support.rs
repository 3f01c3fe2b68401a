//! Runs the store's tests on both databases: each test on a SQLite file of its own (a test
//! each), and all of them on one throwaway PostgreSQL cluster, a fresh database per test (one
//! test per module, since a cluster per test would start dozens of servers).

use crate::Store;
use std::future::Future;
use std::pin::Pin;

/// A test body: given an empty store, panics on failure.
pub(crate) type Body = fn(Store) -> Pin<Box<dyn Future<Output = ()>>>;

/// For each named `async fn NAME(store: Store)` of the calling module: a test
/// `on_sqlite::NAME`, and one test `on_postgres` that runs them all.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (_dir, store) = $crate::test_support::sqlite_store().await;
                    super::$name(store).await;
                }
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn on_postgres() {
            let tests: &[(&str, $crate::test_support::Body)] = &[$(
                (stringify!($name), |store| Box::pin($name(store))),
            )*];
            $crate::test_support::run_on_postgres(tests).await;
        }
    };
}
pub(crate) use on_both_databases;

/// A store on a new SQLite file in a temporary directory (kept as long as the directory).
pub(crate) async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("sluice.db"))
        .await
        .expect("SQLite store");
    (dir, store)
}

/// Starts a PostgreSQL cluster and runs each test on a store in a database of its own.
pub(crate) async fn run_on_postgres(tests: &[(&str, Body)]) {
    let pg = tokio::task::spawn_blocking(sluice_tests::Postgres::start)
        .await
        .expect("start PostgreSQL");
    for (name, test) in tests {
        let store = postgres_store(&pg, name).await;
        eprintln!("on PostgreSQL: {name}");
        test(store.clone()).await;
        store.close().await;
    }
}

/// A store on a new database `name` of `pg`'s cluster, as its application user.
pub(crate) async fn postgres_store(pg: &sluice_tests::Postgres, name: &str) -> Store {
    pg.admin_sql(
        "postgres",
        &format!("CREATE DATABASE {name} OWNER {}", pg.app_user),
    );
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/{name}",
        pg.app_user, pg.app_password, pg.port
    );
    Store::open_postgres(&url, name)
        .await
        .unwrap_or_else(|e| panic!("open the PostgreSQL store {name}: {e:?}"))
}
