use super::*;

#[test]
fn a_range_is_read_in_at_most_max_points_buckets_of_whole_raw_samples() {
    for span_ms in [0, 1, 15 * 60_000, 3_600_000, 86_400_000, 7 * 86_400_000] {
        let bucket = bucket_ms(span_ms);
        assert_eq!(bucket % 5_000, 0, "whole raw samples: {span_ms} → {bucket}");
        assert!(
            span_ms / bucket <= i64::from(MAX_POINTS),
            "{span_ms} → {bucket}"
        );
    }
    assert_eq!(
        bucket_ms(3_600_000),
        5_000,
        "an hour is read at full resolution"
    );
    assert_eq!(
        bucket_ms(7 * 86_400_000),
        840_000,
        "a week in 14-minute buckets"
    );
}

#[test]
fn retention_cuts_off_at_whole_minutes_a_day_back_and_at_the_retention() {
    let retention = HistoryRetention {
        retention: Duration::from_secs(14 * 86_400),
    };
    let now_ms = 1_800_000_000_123;
    let (downsample, delete) = retention.cutoffs(now_ms);
    assert_eq!(downsample % 60_000, 0);
    assert!(now_ms - downsample >= 86_400_000 && now_ms - downsample < 86_460_000);
    assert_eq!(now_ms - delete, 14 * 86_400_000);
}

#[test]
fn samples_beyond_the_queue_bound_are_dropped_and_counted() {
    let history = History::new("1-00000001", "host");
    let manager_snapshot = |at_ms: i64| PoolSnapshot {
        taken_at: DateTime::from_timestamp_millis(at_ms).unwrap(),
        total: 1,
        idle: 1,
        active: 0,
        waiting: 0,
        leases: 0,
        stale: 0,
        max: 5,
        min: 0,
        limit: 5,
        budget: None,
        server_connections: None,
        server_usable: None,
        utilization: 0.0,
        acquire_latency: crate::lease::Quantiles::default(),
        acquire_timeouts: 0,
        issued: 0,
        released: 0,
        revoked: 0,
        hold_p95_ms: None,
        per_task: vec![],
        window_p95_ms: None,
    };
    for i in 0..(MAX_QUEUED_SAMPLES as i64 + 7) {
        history.record_sample(&manager_snapshot(i * 5_000));
    }
    let counts = history.counts();
    assert_eq!(counts.samples_dropped, 7);
    assert_eq!(history.inner.queue.lock().samples.len(), MAX_QUEUED_SAMPLES);
    assert_eq!(
        history
            .inner
            .queue
            .lock()
            .samples
            .front()
            .unwrap()
            .sample
            .at_ms,
        7 * 5_000,
        "the oldest go first"
    );
}
