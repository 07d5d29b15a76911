//! The store: accepting, the delivery queue, the quarantine, the audit trail, users, counters.

#[macro_use]
mod common;

use std::os::unix::fs::PermissionsExt;

use common::{AcceptSpooled, Db, TempDir, copy, finding, held_copy, message};
use hallpass_store::{
    Actor, AuditEntry, AuditFilter, CopyKind, Counters, HeldFilter, HeldStatus, Outcome, Role,
    Store, StoreError, new_id,
};

const T0: i64 = 1_795_425_242_000; // 2026-11-23T09:14:02Z
const LEASE: i64 = 60_000;

fn dpo(name: &str) -> Actor {
    Actor {
        name: name.into(),
        address: Some("127.0.0.1".into()),
    }
}

#[tokio::test]
async fn open_creates_private_files_and_reopens() {
    let tmp = TempDir::new("open");
    let dir = tmp.path().join("data");
    let store = Store::open(&dir).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("hallpass.db")), 0o600);
    assert_eq!(mode(&dir.join("spool")), 0o700);
    store
        .user_add("alice", Role::Dpo, "correct horse")
        .await
        .unwrap();
    assert_eq!(mode(&dir.join("hallpass.db-wal")), 0o600);
    store.close().await;
    // Migrations already applied: opening again keeps the data.
    let again = Store::open(&dir).await.unwrap();
    assert_eq!(again.user_list().await.unwrap().len(), 1);
}

async fn claim_returns_the_deliver_copy_not_the_held_one_and_leases_it(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    let deliver = copy(
        CopyKind::Deliver,
        &spool,
        &["head@lumen.sch.uk", "office@lumen.sch.uk"],
    );
    let held = held_copy(
        &spool,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![finding("uk_upn", "attachment:class.xlsx", 28)],
    );
    let (deliver_id, held_id) = (deliver.id.clone(), held.id.clone());
    let m = message("teacher@lumen.sch.uk", T0, vec![deliver, held]);
    store.accept_spooled(&m).await.unwrap();

    let batches = store.claim_due("worker-1", T0, LEASE, 10).await.unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.copy_id, deliver_id);
    assert_ne!(b.copy_id, held_id);
    assert_eq!(b.kind, CopyKind::Deliver);
    assert_eq!(b.spool_id, spool);
    assert_eq!(b.sender, "teacher@lumen.sch.uk");
    assert_eq!(b.attempts, 0);
    assert_eq!(b.first_queued_ms, T0);
    let addrs: Vec<&str> = b.recipients.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(addrs, ["head@lumen.sch.uk", "office@lumen.sch.uk"]);

    // Leased: nobody else gets them, even much later while the lease holds.
    assert!(
        store
            .claim_due("worker-2", T0, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_due("worker-2", T0 + LEASE - 1, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let stats = store.queue_stats(T0 + 5_000).await.unwrap();
    assert_eq!(stats.queued, 2);
    assert_eq!(stats.oldest_age_ms, Some(5_000));
    assert_eq!(stats.held, 1);
}

async fn nothing_is_due_before_its_time(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    store
        .accept_spooled(&message(
            "a@lumen.sch.uk",
            T0,
            vec![copy(CopyKind::Deliver, &spool, &["b@example.com"])],
        ))
        .await
        .unwrap();
    assert!(
        store
            .claim_due("w", T0 - 1, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due().await.unwrap(), Some(T0));
    assert_eq!(store.claim_due("w", T0, LEASE, 0).await.unwrap(), vec![]);
    assert_eq!(store.claim_due("w", T0, LEASE, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.next_due().await.unwrap(),
        None,
        "claimed recipients are not queued"
    );
}

async fn deferred_recipients_wait_for_their_next_attempt(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    let c = copy(
        CopyKind::Deliver,
        &spool,
        &["x@example.com", "y@example.org"],
    );
    let copy_id = c.id.clone();
    store
        .accept_spooled(&message("a@lumen.sch.uk", T0, vec![c]))
        .await
        .unwrap();
    let b = store.claim_due("w", T0, LEASE, 10).await.unwrap().remove(0);
    let (x, y) = (b.recipients[0].0, b.recipients[1].0);
    store
        .record(
            &[
                (
                    x,
                    Outcome::Deferred {
                        reply: "451 4.3.0 try later".into(),
                        next_attempt_ms: T0 + 300_000,
                    },
                ),
                (
                    y,
                    Outcome::Delivered {
                        reply: "250 2.0.0 ok".into(),
                    },
                ),
            ],
            T0 + 10,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_due("w", T0 + 299_999, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due().await.unwrap(), Some(T0 + 300_000));
    let again = store.claim_due("w", T0 + 300_000, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].copy_id, copy_id);
    assert_eq!(again[0].recipients, vec![(x, "x@example.com".to_string())]);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(
        again[0].first_queued_ms, T0,
        "the queue lifetime starts at acceptance"
    );

    // The last reply is kept.
    let mut conn = db.raw().await;
    let reply: String = sqlx::query_scalar("SELECT last_reply FROM recipients WHERE id = $1")
        .bind(y)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(reply, "250 2.0.0 ok");
}

async fn final_outcomes_are_final_and_recording_twice_changes_nothing(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    store
        .accept_spooled(&message(
            "a@lumen.sch.uk",
            T0,
            vec![copy(
                CopyKind::Deliver,
                &spool,
                &["d@example.com", "f@example.com", "e@example.com"],
            )],
        ))
        .await
        .unwrap();
    let b = store.claim_due("w", T0, LEASE, 10).await.unwrap().remove(0);
    let ids: Vec<i64> = b.recipients.iter().map(|r| r.0).collect();
    let results = [
        (
            ids[0],
            Outcome::Delivered {
                reply: "250 ok".into(),
            },
        ),
        (
            ids[1],
            Outcome::Failed {
                reply: "550 5.1.1 no such user".into(),
            },
        ),
        (
            ids[2],
            Outcome::Expired {
                reply: "queue lifetime passed".into(),
            },
        ),
    ];
    store.record(&results, T0 + 1).await.unwrap();
    // The same results again (a retry of the bookkeeping) and a contradicting one change nothing.
    store.record(&results, T0 + 2).await.unwrap();
    store
        .record(
            &[(
                ids[0],
                Outcome::Deferred {
                    reply: "451".into(),
                    next_attempt_ms: T0,
                },
            )],
            T0 + 3,
        )
        .await
        .unwrap();
    assert_eq!(store.requeue_expired(T0 + 10 * LEASE).await.unwrap(), 0);
    assert!(
        store
            .claim_due("w", T0 + 10 * LEASE, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due().await.unwrap(), None);
    assert_eq!(store.queue_stats(T0 + 10).await.unwrap().queued, 0);
    let mut conn = db.raw().await;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, attempts FROM recipients ORDER BY ord")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            ("delivered".into(), 1),
            ("failed".into(), 1),
            ("expired".into(), 1)
        ]
    );
}

async fn a_crash_mid_send_is_resumed_after_the_lease(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    store
        .accept_spooled(&message(
            "a@lumen.sch.uk",
            T0,
            vec![copy(CopyKind::Deliver, &spool, &["p@example.com"])],
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_due("crashed", T0, 1_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    drop(store);

    // A restart: the lease has not run out yet, so nothing moves.
    let store = db.open().await;
    assert_eq!(store.requeue_expired(T0 + 999).await.unwrap(), 0);
    assert!(
        store
            .claim_due("new", T0 + 999, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.requeue_expired(T0 + 1_000).await.unwrap(), 1);
    let b = store.claim_due("new", T0 + 1_000, LEASE, 10).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].recipients[0].1, "p@example.com");
}

async fn claims_are_limited_by_copies_and_oldest_first(db: Db) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = copy(
            CopyKind::Deliver,
            &new_id(),
            &["a@example.com", "b@example.com"],
        );
        ids.push(c.id.clone());
        store
            .accept_spooled(&message("s@lumen.sch.uk", T0 + i, vec![c]))
            .await
            .unwrap();
    }
    let first = store.claim_due("w", T0 + 10, LEASE, 2).await.unwrap();
    let got: Vec<&str> = first.iter().map(|b| b.copy_id.as_str()).collect();
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    assert!(first.iter().all(|b| b.recipients.len() == 2));
    let rest = store.claim_due("w", T0 + 10, LEASE, 10).await.unwrap();
    assert_eq!(rest.len(), 3);
}

async fn concurrent_workers_never_share_a_recipient(db: Db) {
    let store = db.open().await;
    for _ in 0..40 {
        let c = copy(
            CopyKind::Deliver,
            &new_id(),
            &["a@example.com", "b@example.com"],
        );
        store
            .accept_spooled(&message("s@lumen.sch.uk", T0, vec![c]))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_due(&format!("w{w}"), T0, LEASE, 3)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(
                    got.into_iter()
                        .flat_map(|b| b.recipients.into_iter().map(|r| r.0)),
                );
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(n, 80);
    assert_eq!(all.len(), 80, "a recipient was claimed twice");
}

async fn accept_is_one_transaction(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    let c = copy(CopyKind::Deliver, &spool, &["a@example.com"]);
    let mut dup = c.clone();
    dup.recipients = vec!["b@example.com".into()];
    // Two copies with the same id: the second insert fails, and nothing of the message remains.
    let bad = message("s@lumen.sch.uk", T0, vec![c, dup]);
    assert!(matches!(store.accept(&bad).await, Err(StoreError::Db(_))));
    assert!(
        store
            .claim_due("w", T0, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.finished_spool_ids(10).await.unwrap().is_empty());
    let mut conn = db.raw().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

async fn spool_files_are_finished_only_when_nothing_needs_them(db: Db) {
    let store = db.open().await;
    // Original bytes shared by a deliver copy and a held copy.
    let original = new_id();
    let deliver = copy(CopyKind::Deliver, &original, &["head@lumen.sch.uk"]);
    let held = held_copy(
        &original,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![],
    );
    let held_id = held.id.clone();
    store
        .accept_spooled(&message("teacher@lumen.sch.uk", T0, vec![deliver, held]))
        .await
        .unwrap();
    assert!(
        store.finished_spool_ids(10).await.unwrap().is_empty(),
        "queued"
    );

    let b = store.claim_due("w", T0, LEASE, 10).await.unwrap().remove(0);
    assert!(
        store.finished_spool_ids(10).await.unwrap().is_empty(),
        "sending"
    );
    store
        .record(
            &[(
                b.recipients[0].0,
                Outcome::Delivered {
                    reply: "250".into(),
                },
            )],
            T0 + 1,
        )
        .await
        .unwrap();
    assert!(
        store.finished_spool_ids(10).await.unwrap().is_empty(),
        "the held copy keeps the file"
    );

    // Released from a rewritten file: the original is done with, the rewritten one is needed.
    let rewritten = new_id();
    store.spool().write(&rewritten, b"rewritten").await.unwrap();
    store
        .release(
            &held_id,
            &dpo("dpo@lumen.sch.uk"),
            &rewritten,
            false,
            T0 + 100,
        )
        .await
        .unwrap();
    assert!(
        store.finished_spool_ids(10).await.unwrap().is_empty(),
        "the released copy keeps the file the DPO reviewed until it is purged"
    );
    let b = store
        .claim_due("w", T0 + 100, LEASE, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(b.copy_id, held_id);
    assert_eq!(
        b.spool_id, rewritten,
        "the released copy is sent from the rewritten file"
    );
    assert_eq!(
        b.first_queued_ms,
        T0 + 100,
        "the queue lifetime starts at release"
    );
    store
        .record(
            &[(
                b.recipients[0].0,
                Outcome::Failed {
                    reply: "550".into(),
                },
            )],
            T0 + 101,
        )
        .await
        .unwrap();
    // The rewritten file was only for sending.
    assert_eq!(
        store.finished_spool_ids(10).await.unwrap(),
        vec![rewritten.clone()]
    );
    // Purged after its review period: the original goes too.
    let mut purged = store
        .purge(T0 + 1_000, HOUR, 500, &dpo("retention"))
        .await
        .unwrap();
    purged.sort();
    let mut expected = vec![original.clone(), rewritten.clone()];
    expected.sort();
    assert_eq!(purged, expected);
    let mut finished = store.finished_spool_ids(10).await.unwrap();
    finished.sort();
    assert_eq!(finished, expected);
    assert_eq!(store.finished_spool_ids(1).await.unwrap().len(), 1);

    store.forget_spools(&[original]).await.unwrap();
    assert_eq!(store.finished_spool_ids(10).await.unwrap(), vec![rewritten]);
}

async fn a_rejected_copy_keeps_its_file_until_purged(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    let held = held_copy(&spool, &["parent@example.com"], &["bulk_send"], vec![]);
    let id = held.id.clone();
    store
        .accept_spooled(&message("t@lumen.sch.uk", T0, vec![held]))
        .await
        .unwrap();
    assert!(store.finished_spool_ids(10).await.unwrap().is_empty());
    store
        .reject(&id, &dpo("dpo"), "wrong list", T0 + 5)
        .await
        .unwrap();
    assert!(store.finished_spool_ids(10).await.unwrap().is_empty());
    // Not yet past the review period: nothing.
    let purged = store.purge(T0 + 10, HOUR, 10, &dpo("retention")).await;
    assert!(purged.unwrap().is_empty());
    let purged = store.purge(T0 + 20, HOUR, 10, &dpo("retention")).await;
    assert_eq!(purged.unwrap(), vec![spool.clone()]);
    assert_eq!(store.finished_spool_ids(10).await.unwrap(), vec![spool]);
    assert!(
        store
            .claim_due("w", T0 + 10, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_release_clicked_twice_succeeds_once(db: Db) {
    let store = db.open().await;
    let other = db.open().await;
    let spool = new_id();
    let held = held_copy(
        &spool,
        &["parent@example.com", "carer@example.org"],
        &["personal_data_external"],
        vec![finding("uk_nhs_number", "body", 1)],
    );
    let id = held.id.clone();
    store
        .accept_spooled(&message("t@lumen.sch.uk", T0, vec![held]))
        .await
        .unwrap();

    let (a, b) = {
        let (s1, s2) = (store.clone(), other.clone());
        let (id1, id2, sp1, sp2) = (id.clone(), id.clone(), spool.clone(), spool.clone());
        let t1 =
            tokio::spawn(async move { s1.release(&id1, &dpo("alice"), &sp1, false, T0 + 1).await });
        let t2 =
            tokio::spawn(async move { s2.release(&id2, &dpo("bob"), &sp2, false, T0 + 2).await });
        (t1.await.unwrap(), t2.await.unwrap())
    };
    let (winner, loser) = match (&a, &b) {
        (Ok(_), Err(_)) => ("alice", &b),
        (Err(_), Ok(_)) => ("bob", &a),
        _ => panic!("exactly one release must succeed: {a:?} / {b:?}"),
    };
    match loser {
        Err(StoreError::AlreadyDecided { status, by, at_ms }) => {
            assert_eq!(*status, HeldStatus::Released);
            assert_eq!(by.as_deref(), Some(winner));
            assert!(at_ms.is_some());
            let text = loser.as_ref().unwrap_err().to_string();
            assert!(
                text.contains(&format!(
                    "already released by {winner} at 2026-11-23T09:14:0"
                )),
                "{text}"
            );
        }
        other => panic!("expected AlreadyDecided, got {other:?}"),
    }
    let rec = store.held_get(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, HeldStatus::Released);
    assert_eq!(rec.decided_by.as_deref(), Some(winner));

    // Its recipients are queued exactly once.
    let batches = store.claim_due("w", T0 + 10, LEASE, 10).await.unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].recipients.len(), 2);
    assert_eq!(batches[0].spool_id, spool);
    let audit = store
        .audit_list(&AuditFilter {
            target: Some(id.clone()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "release");
    assert_eq!(audit[0].actor.name, winner);
    assert_eq!(audit[0].actor.address.as_deref(), Some("127.0.0.1"));
    assert!(
        audit[0].detail.contains("2 recipient"),
        "{}",
        audit[0].detail
    );
}

async fn reject_records_the_reason_and_blocks_a_later_release(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    let held = held_copy(
        &spool,
        &["parent@example.com"],
        &["misdirected_domain"],
        vec![],
    );
    let id = held.id.clone();
    store
        .accept_spooled(&message("t@lumen.sch.uk", T0, vec![held]))
        .await
        .unwrap();

    let rec = store
        .reject(&id, &dpo("carol"), "wrong recipient", T0 + 60_000)
        .await
        .unwrap();
    assert_eq!(rec.status, HeldStatus::Rejected);
    assert_eq!(rec.reason.as_deref(), Some("wrong recipient"));
    assert_eq!(rec.decided_ms, Some(T0 + 60_000));
    match store
        .release(&id, &dpo("dave"), &spool, false, T0 + 120_000)
        .await
    {
        Err(StoreError::AlreadyDecided {
            status: HeldStatus::Rejected,
            by,
            at_ms,
        }) => {
            assert_eq!(by.as_deref(), Some("carol"));
            assert_eq!(at_ms, Some(T0 + 60_000));
        }
        other => panic!("expected AlreadyDecided, got {other:?}"),
    }
    assert!(matches!(
        store.reject(&id, &dpo("dave"), "", T0).await,
        Err(StoreError::AlreadyDecided { .. })
    ));
    assert!(
        store
            .claim_due("w", T0 + 200_000, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let audit = store.audit_list(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "reject");
    assert_eq!(audit[0].target.as_deref(), Some(id.as_str()));
    assert!(audit[0].detail.contains("wrong recipient"));

    assert!(matches!(
        store
            .release(
                "01JNOSUCHCOPY0000000000000",
                &dpo("dave"),
                &spool,
                false,
                T0
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .held_get("01JNOSUCHCOPY0000000000000")
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_false_positive_is_recorded_per_detector_and_audited(db: Db) {
    let store = db.open().await;
    let spool = new_id();
    let held = held_copy(
        &spool,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![
            finding("uk_nhs_number", "body", 1),
            finding("date_of_birth", "body", 1),
            finding("uk_nhs_number", "attachment:letter.pdf", 2),
        ],
    );
    let id = held.id.clone();
    store
        .accept_spooled(&message("t@lumen.sch.uk", T0, vec![held]))
        .await
        .unwrap();
    let rec = store
        .release(&id, &dpo("erin"), &spool, true, T0 + 1)
        .await
        .unwrap();
    assert_eq!(rec.status, HeldStatus::Released);
    assert_eq!(
        store.false_positive_counts().await.unwrap(),
        vec![
            ("date_of_birth".to_string(), 1),
            ("uk_nhs_number".to_string(), 1)
        ]
    );
    let actions: Vec<String> = store
        .audit_list(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, ["false-positive", "release"], "newest first");
    let fp = store
        .audit_list(&AuditFilter {
            action: Some("false-positive".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(fp[0].detail, "detectors: date_of_birth, uk_nhs_number");
}

async fn the_audit_trail_cannot_be_changed(db: Db) {
    let store = db.open().await;
    for (i, action) in ["login", "user-add", "login"].iter().enumerate() {
        store
            .audit(&AuditEntry {
                at_ms: T0 + i as i64,
                actor: Actor {
                    name: format!("cli:user{i}"),
                    address: None,
                },
                action: action.to_string(),
                target: (i == 1).then(|| "frank".to_string()),
                detail: format!("entry {i}"),
            })
            .await
            .unwrap();
    }
    let all = store.audit_list(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].seq > all[1].seq && all[1].seq > all[2].seq);
    let logins = store
        .audit_list(&AuditFilter {
            action: Some("login".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(logins.len(), 2);
    let since = store
        .audit_list(&AuditFilter {
            since_ms: Some(T0 + 1),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 2);
    let by = store
        .audit_list(&AuditFilter {
            actor: Some("cli:user1".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by[0].target.as_deref(), Some("frank"));
    let page = store
        .audit_list(&AuditFilter {
            limit: 1,
            offset: 1,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page, vec![all[1].clone()]);

    let mut conn = db.raw().await;
    let upd = sqlx::query("UPDATE audit SET detail = 'changed'")
        .execute(&mut conn)
        .await;
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = sqlx::query("DELETE FROM audit").execute(&mut conn).await;
    assert!(del.unwrap_err().to_string().contains("append-only"));
    assert_eq!(
        store.audit_list(&AuditFilter::default()).await.unwrap(),
        all
    );
}

async fn held_list_filters_and_orders_newest_first(db: Db) {
    let store = db.open().await;
    let mk = |sender: &str, at: i64, rule: &str, detector: &str| {
        let held = held_copy(
            &new_id(),
            &["parent@example.com"],
            &[rule],
            vec![finding(detector, "attachment:class.xlsx", 3)],
        );
        let id = held.id.clone();
        (id, message(sender, at, vec![held]))
    };
    let (old, m1) = mk(
        "teacher@lumen.sch.uk",
        T0,
        "personal_data_external",
        "uk_upn",
    );
    let (mid, m2) = mk("head@lumen.sch.uk", T0 + 1_000, "bulk_send", "uk_nino");
    let (new, m3) = mk(
        "Teacher@Lumen.sch.uk",
        T0 + 2_000,
        "personal_data_external",
        "uk_nino",
    );
    for m in [&m1, &m2, &m3] {
        store.accept_spooled(m).await.unwrap();
    }
    let ids = |v: Vec<hallpass_store::HeldRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();

    let all = store.held_list(&HeldFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        [new.clone(), mid.clone(), old.clone()]
    );
    let first = &all[2];
    assert_eq!(first.from, "teacher@lumen.sch.uk");
    assert_eq!(first.rcpt, ["parent@example.com"]);
    assert_eq!(first.rules, ["personal_data_external"]);
    assert_eq!(
        first.findings,
        vec![finding("uk_upn", "attachment:class.xlsx", 3)]
    );
    assert_eq!(first.status, HeldStatus::Held);
    assert_eq!(first.received_ms, T0);
    assert_eq!(first.size, 1234);
    assert_eq!(first.message_id, m1.message_id);
    assert_eq!(first.spool_id, m1.copies[0].spool_id);

    let f = |g: fn(&mut HeldFilter)| {
        let mut f = HeldFilter::default();
        g(&mut f);
        f
    };
    assert_eq!(
        ids(store
            .held_list(&f(|f| f.rule = Some("personal_data_external".into())))
            .await
            .unwrap()),
        [new.clone(), old.clone()]
    );
    assert_eq!(
        ids(store
            .held_list(&f(|f| f.sender = Some("TEACHER@lumen.sch.uk".into())))
            .await
            .unwrap()),
        [new.clone(), old.clone()]
    );
    assert_eq!(
        ids(store
            .held_list(&f(|f| f.since_ms = Some(T0 + 1_000)))
            .await
            .unwrap()),
        [new.clone(), mid.clone()]
    );
    assert_eq!(
        ids(store
            .held_list(&f(|f| f.detector = Some("uk_nino".into())))
            .await
            .unwrap()),
        [new.clone(), mid.clone()]
    );
    assert_eq!(
        ids(store
            .held_list(&f(|f| {
                f.limit = 1;
                f.offset = 1;
            }))
            .await
            .unwrap()),
        vec![mid.clone()]
    );

    // Decided copies leave the default list but stay in the others.
    store
        .release(&mid, &dpo("g"), &m2.copies[0].spool_id, false, T0 + 5_000)
        .await
        .unwrap();
    store.reject(&old, &dpo("g"), "", T0 + 6_000).await.unwrap();
    assert_eq!(
        ids(store.held_list(&HeldFilter::default()).await.unwrap()),
        vec![new.clone()]
    );
    assert_eq!(
        ids(store.held_list(&f(|f| f.status = None)).await.unwrap()),
        [new.clone(), mid.clone(), old.clone()]
    );
    assert_eq!(
        ids(store
            .held_list(&f(|f| f.status = Some(HeldStatus::Released)))
            .await
            .unwrap()),
        vec![mid.clone()]
    );
    assert_eq!(
        ids(store
            .held_list(&f(|f| f.status = Some(HeldStatus::Rejected)))
            .await
            .unwrap()),
        vec![old.clone()]
    );
}

async fn users_add_verify_disable_token_and_remove(db: Db) {
    let store = db.open().await;
    store
        .user_add("dpo@lumen.sch.uk", Role::Dpo, "first password")
        .await
        .unwrap();
    assert!(matches!(
        store
            .user_add("dpo@lumen.sch.uk", Role::Admin, "other")
            .await,
        Err(StoreError::Exists)
    ));
    assert!(matches!(
        store.user_add("two words", Role::Dpo, "pw").await,
        Err(StoreError::InvalidUserName(_))
    ));
    assert!(matches!(
        store.user_add("relay1", Role::Relay, "").await,
        Err(StoreError::EmptyPassword)
    ));

    let u = store
        .user_verify("dpo@lumen.sch.uk", "first password")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.name, "dpo@lumen.sch.uk");
    assert_eq!(u.role, Role::Dpo);
    assert!(!u.disabled);
    assert!(
        store
            .user_verify("dpo@lumen.sch.uk", "wrong")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .user_verify("nobody", "first password")
            .await
            .unwrap()
            .is_none()
    );

    // The stored hash is argon2id, never the password.
    let mut conn = db.raw().await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("first password"));

    store
        .user_set_password("dpo@lumen.sch.uk", "second password")
        .await
        .unwrap();
    assert!(
        store
            .user_verify("dpo@lumen.sch.uk", "first password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .user_verify("dpo@lumen.sch.uk", "second password")
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        store.user_set_password("nobody", "x").await,
        Err(StoreError::NoSuchUser)
    ));

    let token = store.user_new_token("dpo@lumen.sch.uk").await.unwrap();
    assert!(token.starts_with("hp_") && token.len() == 67, "{token}");
    assert_eq!(
        store.user_by_token(&token).await.unwrap().unwrap().name,
        "dpo@lumen.sch.uk"
    );
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        !stored.contains(&token[3..]),
        "only a digest of the token is kept"
    );
    let newer = store.user_new_token("dpo@lumen.sch.uk").await.unwrap();
    assert_ne!(newer, token);
    assert!(
        store.user_by_token(&token).await.unwrap().is_none(),
        "the old token is replaced"
    );
    assert!(store.user_by_token(&newer).await.unwrap().is_some());
    assert!(store.user_by_token("hp_0000").await.unwrap().is_none());
    assert!(matches!(
        store.user_new_token("nobody").await,
        Err(StoreError::NoSuchUser)
    ));

    store
        .user_set_disabled("dpo@lumen.sch.uk", true)
        .await
        .unwrap();
    assert!(
        store
            .user_verify("dpo@lumen.sch.uk", "second password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.user_by_token(&newer).await.unwrap().is_none());
    assert!(store.user_list().await.unwrap()[0].disabled);
    store
        .user_set_disabled("dpo@lumen.sch.uk", false)
        .await
        .unwrap();
    assert!(
        store
            .user_verify("dpo@lumen.sch.uk", "second password")
            .await
            .unwrap()
            .is_some()
    );

    store
        .user_add("relay1", Role::Relay, "relay secret")
        .await
        .unwrap();
    let names: Vec<(String, Role)> = store
        .user_list()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.role))
        .collect();
    assert_eq!(
        names,
        [
            ("dpo@lumen.sch.uk".into(), Role::Dpo),
            ("relay1".into(), Role::Relay)
        ]
    );

    store.user_remove("dpo@lumen.sch.uk").await.unwrap();
    assert!(
        store
            .user_verify("dpo@lumen.sch.uk", "second password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.user_by_token(&newer).await.unwrap().is_none());
    assert!(matches!(
        store.user_remove("dpo@lumen.sch.uk").await,
        Err(StoreError::NoSuchUser)
    ));
    assert!(matches!(
        store.user_set_disabled("dpo@lumen.sch.uk", true).await,
        Err(StoreError::NoSuchUser)
    ));
}

#[test]
fn roles_and_statuses_parse_and_print() {
    for r in [Role::Dpo, Role::Admin, Role::Relay, Role::Metrics] {
        assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
    }
    for s in [HeldStatus::Held, HeldStatus::Released, HeldStatus::Rejected] {
        assert_eq!(s.to_string().parse::<HeldStatus>().unwrap(), s);
    }
    let err = "root".parse::<Role>().unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown role \"root\": expected one of dpo, admin, relay, metrics"
    );
}

async fn two_handles_on_one_folder_both_work(db: Db) {
    // As `hallpass held list` beside a running `hallpass serve`.
    let serve = db.open().await;
    let cli = db.open().await;
    let held = held_copy(
        &new_id(),
        &["parent@example.com"],
        &["personal_data_external"],
        vec![],
    );
    let id = held.id.clone();
    serve
        .accept_spooled(&message("t@lumen.sch.uk", T0, vec![held]))
        .await
        .unwrap();
    let listed = cli.held_list(&HeldFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    cli.release(&id, &dpo("cli:root"), &listed[0].spool_id, false, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        serve.held_get(&id).await.unwrap().unwrap().status,
        HeldStatus::Released
    );
    assert_eq!(
        serve.claim_due("w", T0 + 1, LEASE, 10).await.unwrap().len(),
        1
    );

    cli.user_add("admin", Role::Admin, "pw one").await.unwrap();
    assert!(
        serve
            .user_verify("admin", "pw one")
            .await
            .unwrap()
            .is_some()
    );

    // Writers on both handles at once wait for each other instead of failing.
    let mut tasks = Vec::new();
    for (i, s) in [serve.clone(), cli.clone()]
        .into_iter()
        .cycle()
        .take(20)
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let c = copy(CopyKind::Deliver, &new_id(), &["x@example.com"]);
            s.accept_spooled(&message("s@lumen.sch.uk", T0 + i as i64, vec![c]))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(cli.queue_stats(T0 + 100).await.unwrap().queued, 21);
}

async fn the_sliding_window_counts_recent_recipients_per_sender(db: Db) {
    let store = db.open().await;
    let hour = 3_600_000;
    let s = "teacher@lumen.sch.uk";
    assert_eq!(store.add_and_count(s, 10, T0, hour).await.unwrap(), 10);
    assert_eq!(
        store.add_and_count(s, 5, T0 + 1_000, hour).await.unwrap(),
        15
    );
    assert_eq!(
        store
            .add_and_count("Teacher@Lumen.sch.uk", 1, T0 + 2_000, hour)
            .await
            .unwrap(),
        16
    );
    assert_eq!(
        store
            .add_and_count("head@lumen.sch.uk", 7, T0 + 2_000, hour)
            .await
            .unwrap(),
        7
    );
    // The first event falls out exactly one window later; the second just after.
    assert_eq!(
        store
            .add_and_count(s, 0, T0 + hour - 1, hour)
            .await
            .unwrap(),
        16
    );
    assert_eq!(store.add_and_count(s, 0, T0 + hour, hour).await.unwrap(), 6);
    assert_eq!(
        store
            .add_and_count(s, 2, T0 + hour + 1_000, hour)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .add_and_count(s, 0, T0 + 3 * hour, hour)
            .await
            .unwrap(),
        0
    );
    // Pruned: old events of every sender are gone from the table.
    let mut conn = db.raw().await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM counter_events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

async fn a_message_not_accepted_is_taken_back_out_of_the_window(db: Db) {
    let store = db.open().await;
    let hour = 3_600_000;
    let s = "teacher@lumen.sch.uk";
    assert_eq!(store.add_and_count(s, 4, T0, hour).await.unwrap(), 4);
    let refused = new_id();
    assert_eq!(
        store
            .add_event_and_count("Teacher@lumen.sch.uk", &refused, 30, T0 + 1, hour)
            .await
            .unwrap(),
        34
    );
    store
        .take_back("TEACHER@lumen.sch.uk", &refused, 30)
        .await
        .unwrap();
    // Sent again under a new id: it counts once.
    assert_eq!(
        store
            .add_event_and_count(s, &new_id(), 30, T0 + 2, hour)
            .await
            .unwrap(),
        34
    );
    // Taking back an event that is gone, or another sender's, changes nothing.
    store.take_back(s, &refused, 30).await.unwrap();
    store
        .take_back("head@lumen.sch.uk", &new_id(), 1)
        .await
        .unwrap();
    assert_eq!(store.add_and_count(s, 0, T0 + 3, hour).await.unwrap(), 34);
}

async fn spool_files_without_a_record_are_found_for_removal(db: Db) {
    let store = db.open().await;
    let spool = store.spool().clone();
    let (recorded, orphan) = (new_id(), new_id());
    spool.write(&recorded, b"kept").await.unwrap();
    spool
        .write(&orphan, b"written, then the process died")
        .await
        .unwrap();
    let m = message(
        "teacher@lumen.sch.uk",
        T0,
        vec![copy(CopyKind::Deliver, &recorded, &["head@lumen.sch.uk"])],
    );
    store.accept_spooled(&m).await.unwrap();

    let on_disk = spool
        .ids_older_than(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(on_disk.len(), 2);
    assert_eq!(
        store.unknown_spool_ids(&on_disk).await.unwrap(),
        vec![orphan]
    );
    // A file younger than the age asked for is not listed: it may be mid-accept.
    let young = spool
        .ids_older_than(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(young.is_empty());
}

// ---------------------------------------------------------------- retention

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

async fn recipient_states(db: &Db, copy_id: &str) -> Vec<String> {
    let mut conn = db.raw().await;
    sqlx::query_scalar("SELECT state FROM recipients WHERE copy_id = $1 ORDER BY ord")
        .bind(copy_id)
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// Holds a copy received at `at` on its own spool file; returns (copy id, spool id).
async fn hold_at(store: &Store, at: i64, detector: &str) -> (String, String) {
    let spool = new_id();
    let held = held_copy(
        &spool,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![finding(detector, "body", 1)],
    );
    let id = held.id.clone();
    store
        .accept_spooled(&message("teacher@lumen.sch.uk", at, vec![held]))
        .await
        .unwrap();
    (id, spool)
}

async fn purge_rejects_old_held_copies_and_lets_old_decided_files_go(db: Db) {
    let store = db.open().await;
    let retention = dpo("retention");

    // A: held 40 days, sharing its file with a colleague's copy still in the queue.
    let shared = new_id();
    let a_copy = held_copy(
        &shared,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![finding("uk_upn", "body", 3)],
    );
    let a = a_copy.id.clone();
    let colleague = copy(CopyKind::Deliver, &shared, &["head@lumen.sch.uk"]);
    store
        .accept_spooled(&message(
            "teacher@lumen.sch.uk",
            T0 - 40 * DAY,
            vec![colleague, a_copy],
        ))
        .await
        .unwrap();
    // B: held 40 days on its own file. C: held one day.
    let (b, b_spool) = hold_at(&store, T0 - 40 * DAY, "uk_upn").await;
    let (c, _) = hold_at(&store, T0 - DAY, "uk_upn").await;
    // D: rejected 20 days ago. E: rejected yesterday.
    let (d, d_spool) = hold_at(&store, T0 - 21 * DAY, "uk_nino").await;
    store
        .reject(&d, &dpo("dpo1"), "wrong school", T0 - 20 * DAY)
        .await
        .unwrap();
    let (e, _) = hold_at(&store, T0 - 2 * DAY, "uk_nino").await;
    store
        .reject(&e, &dpo("dpo1"), "wrong school", T0 - DAY)
        .await
        .unwrap();
    let stats_before = store.detector_stats().await.unwrap();

    let mut purged = store
        .purge(T0, 30 * DAY, 14 * DAY, &retention)
        .await
        .unwrap();
    purged.sort();
    let mut expected = vec![b_spool.clone(), d_spool.clone()];
    expected.sort();
    assert_eq!(
        purged, expected,
        "A's file is still needed by the colleague's copy"
    );

    // Old held copies: rejected for retention, by the purge's actor, recipients rejected.
    for id in [&a, &b] {
        let h = store.held_get(id).await.unwrap().unwrap();
        assert_eq!(h.status, HeldStatus::Rejected);
        assert_eq!(h.reason.as_deref(), Some(hallpass_store::RETENTION_REASON));
        assert_eq!(h.decided_by.as_deref(), Some("retention"));
        assert_eq!(h.decided_ms, Some(T0));
        assert_eq!(recipient_states(&db, id).await, ["rejected"]);
        // The findings stay, for the dashboard.
        assert_eq!(h.findings.len(), 1);
    }
    // A recent held copy and a recent decision are untouched.
    let h = store.held_get(&c).await.unwrap().unwrap();
    assert_eq!(h.status, HeldStatus::Held);
    assert_eq!(recipient_states(&db, &c).await, ["held"]);
    let h = store.held_get(&e).await.unwrap().unwrap();
    assert_eq!(h.reason.as_deref(), Some("wrong school"));
    // D keeps its decision.
    let h = store.held_get(&d).await.unwrap().unwrap();
    assert_eq!(
        (h.status, h.decided_by.as_deref()),
        (HeldStatus::Rejected, Some("dpo1"))
    );

    // One audit entry per purged copy, by the purge's actor.
    let audit = store
        .audit_list(&AuditFilter {
            action: Some("purge".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut targets: Vec<&str> = audit.iter().filter_map(|x| x.target.as_deref()).collect();
    targets.sort_unstable();
    let mut want = vec![a.as_str(), b.as_str(), d.as_str()];
    want.sort_unstable();
    assert_eq!(targets, want);
    assert!(
        audit
            .iter()
            .all(|x| x.actor.name == "retention" && x.at_ms == T0)
    );

    // The sweep now finds exactly those files; A's goes once the colleague's copy is delivered.
    let mut finished = store.finished_spool_ids(10).await.unwrap();
    finished.sort();
    assert_eq!(finished, expected);
    let batch = store.claim_due("w", T0, LEASE, 10).await.unwrap();
    assert_eq!(batch.len(), 1, "only the colleague's copy is sendable");
    store
        .record(
            &[(
                batch[0].recipients[0].0,
                Outcome::Delivered {
                    reply: "250".into(),
                },
            )],
            T0 + 1,
        )
        .await
        .unwrap();
    assert!(
        store
            .finished_spool_ids(10)
            .await
            .unwrap()
            .contains(&shared)
    );

    // Purging again changes nothing and audits nothing.
    assert!(
        store
            .purge(T0 + 2, 30 * DAY, 14 * DAY, &retention)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .audit_list(&AuditFilter {
            action: Some("purge".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    // The dashboard's figures do not change with a purge.
    assert_eq!(store.detector_stats().await.unwrap(), stats_before);
    // A purged copy cannot be released afterwards.
    let err = store
        .release(&b, &dpo("dpo1"), &b_spool, false, T0 + 3)
        .await;
    assert!(matches!(err, Err(StoreError::AlreadyDecided { .. })));
}

// ---------------------------------------------------------------- dashboard figures

async fn held_per_day_counts_copies_per_rule_and_detector_stats_rate_false_positives(db: Db) {
    let store = db.open().await;
    let day0 = T0 - T0.rem_euclid(DAY);
    let hold = |at: i64, rules: &[&str], detectors: &[&str]| {
        let held = held_copy(
            &new_id(),
            &["parent@example.com"],
            rules,
            detectors
                .iter()
                .flat_map(|d| [finding(d, "body", 1), finding(d, "subject", 1)])
                .collect(),
        );
        (
            held.id.clone(),
            message("teacher@lumen.sch.uk", at, vec![held]),
        )
    };
    let mut ids = Vec::new();
    for (at, rules, detectors) in [
        (
            T0,
            &["personal_data_external", "bulk_send"][..],
            &["uk_upn"][..],
        ),
        (
            T0 - 2 * HOUR,
            &["personal_data_external"][..],
            &["uk_upn", "iban"][..],
        ),
        (T0 - DAY, &["personal_data_external"][..], &["iban"][..]),
        (
            T0 - 40 * DAY,
            &["personal_data_external"][..],
            &["uk_upn"][..],
        ),
    ] {
        let (id, m) = hold(at, rules, detectors);
        store.accept_spooled(&m).await.unwrap();
        ids.push(id);
    }
    // A deliver copy with findings is not in the quarantine's figures.
    let mut m = message(
        "teacher@lumen.sch.uk",
        T0,
        vec![copy(CopyKind::Deliver, &new_id(), &["head@lumen.sch.uk"])],
    );
    m.copies[0].findings = vec![finding("uk_upn", "body", 1)];
    store.accept_spooled(&m).await.unwrap();
    let spool = store.held_get(&ids[1]).await.unwrap().unwrap().spool_id;
    store
        .release(&ids[1], &dpo("dpo1"), &spool, true, T0 + 1)
        .await
        .unwrap();

    let per_day = store.held_per_day(day0 - 29 * DAY).await.unwrap();
    let got: Vec<(i64, &str, u64)> = per_day
        .iter()
        .map(|c| (c.day_ms, c.rule.as_str(), c.held))
        .collect();
    assert_eq!(
        got,
        [
            (day0 - DAY, "personal_data_external", 1),
            (day0, "bulk_send", 1),
            (day0, "personal_data_external", 2),
        ]
    );
    let stats = store.detector_stats().await.unwrap();
    let got: Vec<(&str, u64, u64)> = stats
        .iter()
        .map(|d| (d.detector.as_str(), d.held, d.false_positives))
        .collect();
    assert_eq!(got, [("uk_upn", 3, 1), ("iban", 2, 1)]);
}

both_backends!(
    claim_returns_the_deliver_copy_not_the_held_one_and_leases_it,
    nothing_is_due_before_its_time,
    deferred_recipients_wait_for_their_next_attempt,
    final_outcomes_are_final_and_recording_twice_changes_nothing,
    a_crash_mid_send_is_resumed_after_the_lease,
    claims_are_limited_by_copies_and_oldest_first,
    concurrent_workers_never_share_a_recipient,
    accept_is_one_transaction,
    spool_files_are_finished_only_when_nothing_needs_them,
    a_rejected_copy_keeps_its_file_until_purged,
    a_release_clicked_twice_succeeds_once,
    reject_records_the_reason_and_blocks_a_later_release,
    a_false_positive_is_recorded_per_detector_and_audited,
    the_audit_trail_cannot_be_changed,
    held_list_filters_and_orders_newest_first,
    users_add_verify_disable_token_and_remove,
    the_sliding_window_counts_recent_recipients_per_sender,
    a_message_not_accepted_is_taken_back_out_of_the_window,
    spool_files_without_a_record_are_found_for_removal,
    purge_rejects_old_held_copies_and_lets_old_decided_files_go,
    held_per_day_counts_copies_per_rule_and_detector_stats_rate_false_positives,
    two_handles_on_one_folder_both_work,
);

async fn console_sessions_are_shared_by_relays_and_end_with_their_account(db: Db) {
    use hallpass_store::{Role, SessionFlash};
    let (a, b) = (db.open().await, db.open_node("node-b").await);
    a.user_add("dpo1", Role::Dpo, "a long dpo password")
        .await
        .unwrap();
    let id = "a".repeat(64);
    let checked = |s: &hallpass_store::Store, password: &'static str| {
        let s = s.clone();
        async move {
            s.user_verify_stamped("dpo1", password)
                .await
                .unwrap()
                .expect("the right password")
                .1
        }
    };
    let first = checked(&a, "a long dpo password").await;
    assert!(
        a.session_create(&id, "dpo1", "csrf-1", T0, &first)
            .await
            .unwrap()
    );
    // Relay B knows the session relay A started.
    let s = b.session_get(&id).await.unwrap().expect("shared");
    assert_eq!((s.user.as_str(), s.csrf.as_str()), ("dpo1", "csrf-1"));
    assert_eq!((s.created_ms, s.last_seen_ms), (T0, T0));
    b.session_seen(&id, T0 + 5).await.unwrap();
    a.session_seen(&id, T0 + 1).await.unwrap(); // never back in time
    assert_eq!(
        a.session_get(&id).await.unwrap().unwrap().last_seen_ms,
        T0 + 5
    );
    // Only a hash of the id is kept.
    let mut conn = db.raw().await;
    let kept: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM console_sessions")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_ne!(kept[0], id);
    // A flash set on one relay is shown once, on either.
    let flash = SessionFlash {
        error: false,
        text: "Released.".into(),
    };
    a.session_set_flash(&id, &flash).await.unwrap();
    assert_eq!(b.session_take_flash(&id).await.unwrap(), Some(flash));
    assert_eq!(a.session_take_flash(&id).await.unwrap(), None);
    // A password reset, disabling or removing the account from the terminal ends its sessions.
    b.user_set_password("dpo1", "another long password")
        .await
        .unwrap();
    assert_eq!(a.session_get(&id).await.unwrap(), None);
    // A login whose password was checked before the reset cannot start a session after it.
    assert!(
        !a.session_create(&id, "dpo1", "csrf-2", T0, &first)
            .await
            .unwrap()
    );
    assert_eq!(a.session_get(&id).await.unwrap(), None);
    let second = checked(&b, "another long password").await;
    assert!(
        a.session_create(&id, "dpo1", "csrf-2", T0, &second)
            .await
            .unwrap()
    );
    b.user_set_disabled("dpo1", true).await.unwrap();
    assert_eq!(a.session_get(&id).await.unwrap(), None);
    assert!(
        !a.session_create(&id, "dpo1", "csrf-2", T0, &second)
            .await
            .unwrap(),
        "not while disabled"
    );
    b.user_set_disabled("dpo1", false).await.unwrap();
    assert!(
        a.session_create(&id, "dpo1", "csrf-3", T0, &second)
            .await
            .unwrap()
    );
    b.user_remove("dpo1").await.unwrap();
    assert_eq!(a.session_get(&id).await.unwrap(), None);
    assert!(
        !a.session_create(&id, "dpo1", "csrf-3", T0, &second)
            .await
            .unwrap(),
        "not once removed"
    );
    // Expired ones go: idle, or too old.
    a.user_add("dpo2", Role::Dpo, "a long dpo password")
        .await
        .unwrap();
    let other = a
        .user_verify_stamped("dpo2", "a long dpo password")
        .await
        .unwrap()
        .unwrap()
        .1;
    assert!(
        a.session_create("1", "dpo2", "c", T0, &other)
            .await
            .unwrap()
    );
    assert!(
        a.session_create("2", "dpo2", "c", T0 + 10, &other)
            .await
            .unwrap()
    );
    a.session_seen("2", T0 + 100).await.unwrap();
    assert_eq!(a.session_prune(T0 + 50, T0 - 1).await.unwrap(), 1);
    assert!(b.session_get("2").await.unwrap().is_some());
    assert_eq!(a.session_prune(T0, T0 + 10).await.unwrap(), 1);
    assert!(!b.session_remove("2").await.unwrap());
}

async fn counting_at_once_on_two_handles_misses_no_one(db: Db) {
    // Two relays adding to one sender's window at the same moment: every total is different,
    // and the last one counts everybody.
    let (a, b) = (db.open().await, db.open_node("node-b").await);
    let hour = 3_600_000;
    let mut tasks = Vec::new();
    for (i, s) in [a, b].into_iter().cycle().take(24).enumerate() {
        tasks.push(tokio::spawn(async move {
            s.add_and_count("bulk@lumen.sch.uk", 1, T0 + i as i64, hour)
                .await
                .unwrap()
        }));
    }
    let mut totals = Vec::new();
    for t in tasks {
        totals.push(t.await.unwrap());
    }
    totals.sort_unstable();
    assert_eq!(totals, (1..=24).collect::<Vec<u64>>());
}

both_backends!(
    counting_at_once_on_two_handles_misses_no_one,
    a_decision_owes_the_sender_a_notice_until_one_relay_has_queued_it,
    console_sessions_are_shared_by_relays_and_end_with_their_account
);

/// Relays A and B on one PostgreSQL store, each with its own spool folder.
async fn two_relays(name: &str) -> Option<(Db, Store, Store)> {
    let db = Db::postgres(name).await?;
    let a = db.open_node("relay-a").await;
    let b = db.open_node("relay-b").await;
    Some((db, a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_store_a_held_message_released_on_another_relay_is_sent_from_the_database() {
    let Some((_db, a, b)) = two_relays("pg-held").await else {
        return;
    };
    // Relay A accepts a message: a copy to deliver (a rewritten file of its own) and a held
    // copy, each from a file in A's spool.
    let (spool, rewritten) = (new_id(), new_id());
    let body = b"Subject: synthetic\r\n\r\nclass list attached\r\n";
    a.spool().write(&spool, body).await.unwrap();
    a.spool()
        .write(&rewritten, b"Subject: synthetic\r\n\r\n")
        .await
        .unwrap();
    let deliver = copy(CopyKind::Deliver, &rewritten, &["head@lumen.sch.uk"]);
    let held = held_copy(
        &spool,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![],
    );
    let held_id = held.id.clone();
    a.accept(&message("teacher@lumen.sch.uk", T0, vec![deliver, held]))
        .await
        .unwrap();
    assert_eq!(a.node(), "relay-a");

    // B cannot send A's deliver copy (the file is on A's disk); A can.
    assert_eq!(b.next_due().await.unwrap(), None);
    assert!(b.claim_due("b", T0, LEASE, 10).await.unwrap().is_empty());
    let from_a = a.claim_due("a", T0, LEASE, 10).await.unwrap();
    assert_eq!(from_a.len(), 1);
    assert_eq!(from_a[0].recipients[0].1, "head@lumen.sch.uk");

    // B's console shows the held message: its bytes come from the store.
    assert!(!b.spool().dir().join(format!("{spool}.eml")).exists());
    assert_eq!(b.spool().read(&spool).await.unwrap(), body);

    // Released on B and on A at the same moment: once.
    let (dpo_a, dpo_b) = (dpo("dpo-a"), dpo("dpo-b"));
    let (rb, ra) = tokio::join!(
        b.release(&held_id, &dpo_b, &spool, false, T0 + 5),
        a.release(&held_id, &dpo_a, &spool, false, T0 + 5),
    );
    assert_eq!(
        [rb.is_ok(), ra.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "exactly one release"
    );

    // Both relays could send it now (A from its file, B from the store); one claim gets it.
    let (cb, ca) = tokio::join!(
        b.claim_due("b", T0 + 5, LEASE, 10),
        a.claim_due("a", T0 + 5, LEASE, 10),
    );
    let claimed: Vec<_> = cb.unwrap().into_iter().chain(ca.unwrap()).collect();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].recipients.len(), 1);
    assert_eq!(claimed[0].recipients[0].1, "parent@example.com");
    assert_eq!(b.spool().read(&claimed[0].spool_id).await.unwrap(), body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_store_each_relay_cleans_only_its_own_spool() {
    let Some((_db, a, b)) = two_relays("pg-clean").await else {
        return;
    };
    let spool = new_id();
    a.spool()
        .write(&spool, b"Subject: x\r\n\r\ny\r\n")
        .await
        .unwrap();
    let c = copy(CopyKind::Deliver, &spool, &["b@example.com"]);
    a.accept(&message("a@lumen.sch.uk", T0, vec![c]))
        .await
        .unwrap();
    let batch = a.claim_due("a", T0, LEASE, 10).await.unwrap().remove(0);
    let rcpt = batch.recipients[0].0;
    a.record(
        &[(
            rcpt,
            Outcome::Delivered {
                reply: "250 ok".into(),
            },
        )],
        T0 + 1,
    )
    .await
    .unwrap();
    assert!(b.finished_spool_ids(10).await.unwrap().is_empty());
    assert_eq!(a.finished_spool_ids(10).await.unwrap(), vec![spool.clone()]);
    // B's orphan sweep does not mistake a file of its own for A's record, nor the reverse.
    assert!(
        b.unknown_spool_ids(std::slice::from_ref(&spool))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn shared_store_the_audit_trail_cannot_be_truncated() {
    let Some(db) = Db::postgres("pg-truncate").await else {
        return;
    };
    let store = db.open().await;
    store
        .audit(&AuditEntry {
            at_ms: T0,
            actor: dpo("dpo"),
            action: "login".into(),
            target: None,
            detail: "ok".into(),
        })
        .await
        .unwrap();
    let mut conn = db.raw().await;
    let err = sqlx::query("TRUNCATE audit").execute(&mut conn).await;
    assert!(err.unwrap_err().to_string().contains("append-only"));
    assert_eq!(
        store
            .audit_list(&AuditFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_store_a_restarted_relay_resumes_only_its_own_deliveries() {
    let Some((_db, a, b)) = two_relays("pg-resume").await else {
        return;
    };
    for s in [&a, &b] {
        let spool = new_id();
        s.spool()
            .write(&spool, b"Subject: x\r\n\r\ny\r\n")
            .await
            .unwrap();
        let c = copy(CopyKind::Deliver, &spool, &["p@example.com"]);
        s.accept(&message("t@lumen.sch.uk", T0, vec![c]))
            .await
            .unwrap();
    }
    let owner_a = a.lease_owner("host:1");
    assert_eq!(owner_a, "relay-a/host:1");
    assert_eq!(a.claim_due(&owner_a, T0, LEASE, 10).await.unwrap().len(), 1);
    let owner_b = b.lease_owner("host:2");
    assert_eq!(b.claim_due(&owner_b, T0, LEASE, 10).await.unwrap().len(), 1);
    // A is killed and restarts: its own delivery comes back at once, B's stays B's.
    assert_eq!(a.resume_interrupted(T0 + 1).await.unwrap(), 1);
    assert_eq!(
        a.claim_due(&owner_a, T0 + 1, LEASE, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        b.claim_due(&owner_b, T0 + 1, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn delivered_records_are_forgotten_after_the_period_and_held_ones_stay(db: Db) {
    let store = db.open().await;
    let spool = |id: &str| {
        let store = store.clone();
        let id = id.to_string();
        async move { store.spool().write(&id, b"bytes").await.unwrap() }
    };
    let (done, mixed, waiting) = (new_id(), new_id(), new_id());
    for id in [&done, &mixed, &waiting] {
        spool(id).await;
    }
    let mut delivered = copy(CopyKind::Deliver, &done, &["head@lumen.sch.uk"]);
    delivered.rules = vec!["cc_exposure".into()];
    delivered.findings = vec![finding("uk_nhs_number", "body", 2)];
    let held = held_copy(
        &mixed,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![],
    );
    let held_id = held.id.clone();
    for m in [
        message("teacher@lumen.sch.uk", T0, vec![delivered]),
        message(
            "teacher@lumen.sch.uk",
            T0,
            vec![
                copy(CopyKind::Deliver, &mixed, &["head@lumen.sch.uk"]),
                held,
            ],
        ),
        message(
            "teacher@lumen.sch.uk",
            T0,
            vec![copy(CopyKind::Deliver, &waiting, &["far@example.org"])],
        ),
    ] {
        store.accept_spooled(&m).await.unwrap();
    }
    let batches = store.claim_due("w", T0, LEASE, 10).await.unwrap();
    assert_eq!(batches.len(), 3);
    let results: Vec<(i64, Outcome)> = batches
        .iter()
        .map(|b| {
            let row = b.recipients[0].0;
            if b.spool_id == waiting {
                (
                    row,
                    Outcome::Deferred {
                        reply: "451".into(),
                        next_attempt_ms: T0 + 60_000,
                    },
                )
            } else {
                (
                    row,
                    Outcome::Delivered {
                        reply: "250".into(),
                    },
                )
            }
        })
        .collect();
    store.record(&results, T0 + 1).await.unwrap();

    // Its file is still there: not yet.
    assert_eq!(store.forget_delivered(T0 + 10, 100).await.unwrap(), 0);
    let finished = store.finished_spool_ids(10).await.unwrap();
    assert_eq!(
        finished,
        vec![done.clone()],
        "only the delivered message's file is done"
    );
    store.forget_spools(&finished).await.unwrap();
    // Not older than the period: kept.
    assert_eq!(store.forget_delivered(T0, 100).await.unwrap(), 0);
    // Past it: the delivered message goes; the held one and the one still queued stay.
    assert_eq!(store.forget_delivered(T0 + 10, 100).await.unwrap(), 1);
    assert_eq!(store.forget_delivered(T0 + 10, 100).await.unwrap(), 0);
    assert!(store.held_get(&held_id).await.is_ok());
    let later = store.claim_due("w", T0 + 60_000, LEASE, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].spool_id, waiting);
}

both_backends!(delivered_records_are_forgotten_after_the_period_and_held_ones_stay);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_store_one_node_name_runs_once() {
    let Some(db) = Db::postgres("pg-node-lock").await else {
        return;
    };
    let first = db.open_node("relay-a").await;
    let second = db.open_node("relay-a").await;
    let other = db.open_node("relay-b").await;
    first.claim_node().await.unwrap();
    first.claim_node().await.unwrap(); // again: already ours
    let err = second.claim_node().await.unwrap_err().to_string();
    assert!(err.contains("another relay is running as node"), "{err}");
    other.claim_node().await.unwrap();
    // The lock goes with the holder's connection: once it is closed, the name is free again.
    first.close().await;
    drop(first);
    let mut freed = false;
    for _ in 0..100 {
        if second.claim_node().await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(freed, "the node lock outlived its relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_store_a_purge_on_any_relay_drops_the_databases_copy_of_the_bytes() {
    let Some((db, a, b)) = two_relays("pg-purge-bytes").await else {
        return;
    };
    let file = new_id();
    a.spool().write(&file, b"held bytes").await.unwrap();
    let held = held_copy(
        &file,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![],
    );
    a.accept_spooled(&message("teacher@lumen.sch.uk", T0, vec![held]))
        .await
        .unwrap();
    let count = || async {
        let mut conn = db.raw().await;
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM spool_bytes")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);
    // Relay A is gone for good; relay B's retention sweep purges the held message.
    drop(a);
    let day = 86_400_000;
    let retention = dpo("retention");
    b.purge(T0 + 40 * day, 30 * day, 7 * day, &retention)
        .await
        .unwrap();
    // Rejected for age by this sweep: its sender is owed a notice, written from the bytes still
    // in the store.
    let expired = b.notices_due(T0 + 40 * day, 10).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        expired[0].reason.as_deref(),
        Some(hallpass_store::RETENTION_REASON)
    );
    assert_eq!(
        b.spool().read(&expired[0].spool_id).await.unwrap(),
        b"held bytes"
    );
    // The next sweep takes the bytes out of the database.
    b.purge(T0 + 40 * day + 300_000, 30 * day, 7 * day, &retention)
        .await
        .unwrap();
    assert_eq!(
        count().await,
        0,
        "the personal data left the database with the purge"
    );
}

async fn a_decision_owes_the_sender_a_notice_until_one_relay_has_queued_it(db: Db) {
    let (a, b) = (db.open().await, db.open_node("node-b").await);
    let mut ids = Vec::new();
    for n in 0..2 {
        let file = new_id();
        a.spool().write(&file, b"held").await.unwrap();
        let held = held_copy(&file, &["parent@example.com"], &["bulk_send"], vec![]);
        let id = held.id.clone();
        a.accept_spooled(&message("teacher@lumen.sch.uk", T0 + n, vec![held]))
            .await
            .unwrap();
        ids.push(id);
    }
    assert!(
        a.notices_due(T0 + 100, 10).await.unwrap().is_empty(),
        "held: nothing owed"
    );
    let dpo = dpo("dpo1");
    a.release(
        &ids[0],
        &dpo,
        &a.held_get(&ids[0]).await.unwrap().unwrap().spool_id,
        false,
        T0 + 10,
    )
    .await
    .unwrap();
    b.reject(&ids[1], &dpo, "wrong parent", T0 + 11)
        .await
        .unwrap();
    // Both relays see both owed, oldest first; nothing before its time.
    assert!(b.notices_due(T0 + 9, 10).await.unwrap().is_empty());
    let due = b.notices_due(T0 + 20, 10).await.unwrap();
    let got: Vec<(&str, HeldStatus)> = due.iter().map(|h| (h.id.as_str(), h.status)).collect();
    assert_eq!(
        got,
        [
            (ids[0].as_str(), HeldStatus::Released),
            (ids[1].as_str(), HeldStatus::Rejected)
        ]
    );
    // One relay claims each; the other cannot while the claim runs.
    assert!(a.notice_claim(&ids[0], T0 + 20, T0 + 60_020).await.unwrap());
    assert!(!b.notice_claim(&ids[0], T0 + 21, T0 + 60_021).await.unwrap());
    assert_eq!(b.notices_due(T0 + 21, 10).await.unwrap().len(), 1);
    a.notice_done(&ids[0]).await.unwrap();
    // A relay that claimed and died: the claim runs out and another relay takes it.
    assert!(a.notice_claim(&ids[1], T0 + 20, T0 + 60_020).await.unwrap());
    assert!(b.notices_due(T0 + 60_019, 10).await.unwrap().is_empty());
    assert!(
        b.notice_claim(&ids[1], T0 + 60_020, T0 + 120_020)
            .await
            .unwrap()
    );
    // A failed try comes back when asked.
    b.notice_later(&ids[1], T0 + 65_000).await.unwrap();
    assert!(b.notices_due(T0 + 64_999, 10).await.unwrap().is_empty());
    assert_eq!(b.notices_due(T0 + 65_000, 10).await.unwrap().len(), 1);
    b.notice_done(&ids[1]).await.unwrap();
    assert!(a.notices_due(T0 + 999_999, 10).await.unwrap().is_empty());
    // Done is done: a later try cannot make it owed again.
    b.notice_later(&ids[1], T0).await.unwrap();
    assert!(a.notices_due(T0 + 999_999, 10).await.unwrap().is_empty());
}

async fn rules_that_let_mail_through_are_counted_per_day(db: Db) {
    let store = db.open().await;
    let file = new_id();
    store.spool().write(&file, b"bytes").await.unwrap();
    let mut monitored = copy(CopyKind::Deliver, &file, &["parent@example.com"]);
    monitored.rules = vec!["personal_data_external".into()];
    let held_file = new_id();
    store.spool().write(&held_file, b"bytes").await.unwrap();
    let held = held_copy(
        &held_file,
        &["parent@example.com"],
        &["personal_data_external"],
        vec![],
    );
    for m in [
        message("teacher@lumen.sch.uk", T0, vec![monitored]),
        message("teacher@lumen.sch.uk", T0, vec![held]),
    ] {
        store.accept_spooled(&m).await.unwrap();
    }
    let days = store.let_through_per_day(T0 - 86_400_000).await.unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].rule, "personal_data_external");
    assert_eq!(
        days[0].held, 1,
        "the held one is not counted as let through"
    );
    assert_eq!(days[0].day_ms, T0 - T0.rem_euclid(86_400_000));
}

both_backends!(rules_that_let_mail_through_are_counted_per_day);

async fn a_release_that_loses_the_race_leaves_no_rewritten_file_behind(db: Db) {
    let store = db.open().await;
    let file = new_id();
    store.spool().write(&file, b"original").await.unwrap();
    let held = held_copy(&file, &["parent@example.com"], &["cc_exposure"], vec![]);
    store
        .accept_spooled(&message("teacher@lumen.sch.uk", T0, vec![held.clone()]))
        .await
        .unwrap();
    let h = store.held_get(&held.id).await.unwrap().unwrap();
    let files = || async {
        let mut names: Vec<String> = std::fs::read_dir(store.spool().dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".eml"))
            .collect();
        names.sort();
        names
    };
    let first = store
        .release_held(&h, &dpo("a"), Some(b"rewritten by a"), false, T0 + 1)
        .await
        .unwrap();
    assert_eq!(first.status, HeldStatus::Released);
    assert_eq!(
        files().await.len(),
        2,
        "the original and a's rewritten copy"
    );
    let err = store
        .release_held(&h, &dpo("b"), Some(b"rewritten by b"), false, T0 + 2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyDecided { .. }), "{err}");
    assert_eq!(files().await.len(), 2, "b's rewritten copy was removed");
    let batch = store
        .claim_due("w", T0 + 2, LEASE, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        store.spool().read(&batch.spool_id).await.unwrap(),
        b"rewritten by a"
    );
}

both_backends!(a_release_that_loses_the_race_leaves_no_rewritten_file_behind);
