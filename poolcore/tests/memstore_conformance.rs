//! MemStore passes the shared Store conformance suite.

#[tokio::test]
async fn memstore_conforms() {
    poolcore::conformance::store::run_all(&poolcore::MemStore::new()).await;
}
