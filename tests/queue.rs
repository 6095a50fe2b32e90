//! The batch queue: the same behaviour in memory and on Redis Streams — acknowledgement, takeover of
//! a silent consumer's messages after the visibility timeout, dead letters after N deliveries with
//! the reason, replay.

mod common;

use std::time::Duration;

use common::redis::RedisServer;
use dte_gateway::queue::Queue;

const VIS: Duration = Duration::from_millis(300);

async fn behaves(q: Queue) {
    for i in 0..5 {
        q.push(format!("item-{i}").as_bytes()).await.unwrap();
    }
    let first = q.take("c1", 3, Duration::ZERO).await.unwrap();
    assert_eq!(
        first.iter().map(|m| m.payload.clone()).collect::<Vec<_>>(),
        [b"item-0".to_vec(), b"item-1".to_vec(), b"item-2".to_vec()]
    );
    assert!(first.iter().all(|m| m.deliveries == 1));
    q.ack(&first[0].id).await.unwrap();
    q.ack(&first[1].id).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), 3, "one in flight, two waiting");

    // c1 goes silent holding item-2: after the visibility timeout c2 gets it, delivered twice.
    tokio::time::sleep(VIS + Duration::from_millis(100)).await;
    let second = q.take("c2", 10, Duration::ZERO).await.unwrap();
    let taken: Vec<(Vec<u8>, u64)> = second.iter().map(|m| (m.payload.clone(), m.deliveries)).collect();
    assert!(taken.contains(&(b"item-2".to_vec(), 2)), "{taken:?}");
    assert!(taken.contains(&(b"item-3".to_vec(), 1)) && taken.contains(&(b"item-4".to_vec(), 1)), "{taken:?}");
    for m in &second {
        if m.payload != b"item-4" {
            q.ack(&m.id).await.unwrap();
        }
    }
    // item-4 is poison: it fails on every delivery and lands in the dead letters on the third.
    let mut poison = second.into_iter().find(|m| m.payload == b"item-4").unwrap();
    loop {
        let dead = q.fail(&poison, "CAF exhausted for type 33").await.unwrap();
        if dead {
            break;
        }
        assert!(poison.deliveries < 3, "not dead after {} deliveries", poison.deliveries);
        tokio::time::sleep(VIS + Duration::from_millis(100)).await;
        poison = q.take("c3", 1, Duration::ZERO).await.unwrap().pop().expect("redelivered");
    }
    assert_eq!(poison.deliveries, 3);
    assert_eq!(q.depth().await.unwrap(), 0);
    let dead = q.dead_letters().await.unwrap();
    assert_eq!(
        (dead.len(), dead[0].reason.as_str(), dead[0].deliveries, dead[0].payload.as_slice()),
        (1, "CAF exhausted for type 33", 3, &b"item-4"[..])
    );
    assert_eq!(q.dead_count().await.unwrap(), 1);

    // Replay after the cause is fixed: it comes back as new, and a waiting take sees it at once.
    assert!(q.replay(&dead[0].id).await.unwrap());
    assert!(q.dead_letters().await.unwrap().is_empty());
    assert_eq!(q.dead_count().await.unwrap(), 0);
    let again = q.take("c4", 1, Duration::from_secs(1)).await.unwrap();
    assert_eq!((again[0].payload.as_slice(), again[0].deliveries), (&b"item-4"[..], 1));
    q.ack(&again[0].id).await.unwrap();
    // Many at once (pipelined on Redis), in order.
    q.push_many(&[b"m-1".to_vec(), b"m-2".to_vec(), b"m-3".to_vec()]).await.unwrap();
    let many = q.take("c4", 10, Duration::ZERO).await.unwrap();
    assert_eq!(
        many.iter().map(|m| m.payload.clone()).collect::<Vec<_>>(),
        [b"m-1".to_vec(), b"m-2".to_vec(), b"m-3".to_vec()]
    );
    for m in &many {
        q.ack(&m.id).await.unwrap();
    }
    let started = std::time::Instant::now();
    assert!(q.take("c4", 1, Duration::from_millis(200)).await.unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(150), "an empty take should wait");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_queue() {
    behaves(Queue::memory(VIS, 3)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_streams_queue() {
    let redis = RedisServer::start();
    behaves(Queue::redis(&[redis.url()], false, "dtegw:batch-items", VIS, 3).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_streams_queue_on_a_cluster() {
    let cluster = common::redis::RedisCluster::start();
    behaves(Queue::redis(&cluster.urls(), true, "{dtegw}:batch-items", VIS, 3).await.unwrap()).await;
}
