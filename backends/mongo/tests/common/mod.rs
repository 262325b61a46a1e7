//! The MongoDB server the tests use, and a fresh database on it per test.

#![allow(dead_code)]

use poolcore::model::new_id;
use poolcore_mongo::{MongoConfig, MongoStore};

/// Names the test server: `mongodb://HOST:PORT[/...]`.
pub const URL_ENV: &str = "POOLMANAGER_TEST_MONGO_URL";

/// The test server's URL; `None`, with a notice, when it is not set and CI is not
/// set. Under `CI=true` a missing server fails the test.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {URL_ENV} is not set; scripts/test.sh starts a test server")
        }
        _ => {
            eprintln!("skipping: {URL_ENV} is not set (scripts/test-mongo.sh starts a test server)");
            None
        }
    }
}

/// A store on a new, uniquely named database of the test server.
pub async fn fresh_store() -> Option<MongoStore> {
    let url = server_url()?;
    let database = format!("pm_test_{}", &new_id()[..8]);
    let config = MongoConfig::from_url(&url)
        .unwrap_or_else(|e| panic!("{URL_ENV}: {e}"))
        .with_database(database);
    Some(
        MongoStore::with_config(config)
            .await
            .unwrap_or_else(|e| panic!("cannot open a store on {url}: {e}")),
    )
}

/// Drops the store's database.
pub async fn drop_database(store: MongoStore) {
    let name = store.database().name().to_owned();
    store
        .database()
        .drop()
        .await
        .unwrap_or_else(|e| panic!("drop database {name}: {e}"));
}
