//! The state table: a day is claimed once, whoever asks, and survives a reopen.

mod common;

use common::TempDir;
use hallpass_store::Store;

#[tokio::test]
async fn a_day_is_claimed_once_and_the_claim_survives_a_reopen() {
    let tmp = TempDir::new("state");
    let store = Store::open(tmp.path()).await.unwrap();
    assert_eq!(store.state_get("digest_date").await.unwrap(), None);
    assert!(store.claim_day("digest_date", "2026-11-23").await.unwrap());
    assert!(!store.claim_day("digest_date", "2026-11-23").await.unwrap());
    assert!(
        !store.claim_day("digest_date", "2026-11-22").await.unwrap(),
        "an earlier day never goes back"
    );
    store.close().await;

    let store = Store::open(tmp.path()).await.unwrap();
    assert_eq!(
        store.state_get("digest_date").await.unwrap().as_deref(),
        Some("2026-11-23")
    );
    assert!(!store.claim_day("digest_date", "2026-11-23").await.unwrap());
    assert!(store.claim_day("digest_date", "2026-11-24").await.unwrap());

    // Work that failed after its claim gives the day back.
    store
        .unclaim_day("digest_date", Some("2026-11-23"))
        .await
        .unwrap();
    assert!(store.claim_day("digest_date", "2026-11-24").await.unwrap());
    store.unclaim_day("digest_date", None).await.unwrap();
    assert_eq!(store.state_get("digest_date").await.unwrap(), None);
}

#[tokio::test]
async fn two_handles_racing_for_a_day_get_it_once() {
    let tmp = TempDir::new("state-race");
    let a = Store::open(tmp.path()).await.unwrap();
    let b = Store::open(tmp.path()).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { s.claim_day("digest_date", "2026-11-23").await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}
