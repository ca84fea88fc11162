//! Durations as counts in logarithmic buckets, so that p50 and p90 of "time to acknowledge"
//! or "time to close" can be kept per day and cell as a handful of counters, summed over any
//! range, and read back the same way from memory and from PostgreSQL.
//!
//! Bucket 0 holds everything under a minute; bucket `b ≥ 1` holds durations in
//! `[60 s · 1.25^(b-1), 60 s · 1.25^b)`. A percentile is reported as the upper bound of the
//! bucket it falls in, so it over-states by at most 25 % and never under-states.

use std::collections::BTreeMap;

/// The ratio between consecutive bucket bounds.
const GROWTH: f64 = 1.25;
/// The upper bound of bucket 0, in seconds.
const FIRST_BOUND_SECONDS: f64 = 60.0;
/// The highest bucket: 60 s · 1.25^120 is far beyond any case's life.
pub const MAX_BUCKET: u16 = 120;

/// The bucket of a duration in seconds (negative durations count as zero).
pub fn bucket_of(seconds: i64) -> u16 {
    if seconds < FIRST_BOUND_SECONDS as i64 {
        return 0;
    }
    let ratio = seconds as f64 / FIRST_BOUND_SECONDS;
    let bucket = (ratio.ln() / GROWTH.ln()).floor() as i64 + 1;
    bucket.clamp(1, i64::from(MAX_BUCKET)) as u16
}

/// The upper bound of a bucket, in whole seconds.
pub fn upper_bound_seconds(bucket: u16) -> i64 {
    (FIRST_BOUND_SECONDS * GROWTH.powi(i32::from(bucket))).round() as i64
}

/// The `percentile` (0 < p ≤ 1) of the durations counted in `buckets`, as the upper bound of
/// the bucket it falls in, in seconds; `None` when nothing was counted.
pub fn percentile(buckets: &BTreeMap<u16, i64>, percentile: f64) -> Option<i64> {
    let total: i64 = buckets.values().filter(|count| **count > 0).sum();
    if total == 0 {
        return None;
    }
    // The rank of the sample, 1-based, rounded up: p50 of 4 samples is the 2nd.
    let rank = ((percentile.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (bucket, count) in buckets {
        seen += (*count).max(0);
        if seen >= rank {
            return Some(upper_bound_seconds(*bucket));
        }
    }
    buckets.keys().next_back().map(|b| upper_bound_seconds(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_a_quarter_from_one_minute() {
        assert_eq!(bucket_of(-5), 0);
        assert_eq!(bucket_of(59), 0);
        assert_eq!(bucket_of(60), 1);
        assert_eq!(bucket_of(74), 1);
        assert_eq!(bucket_of(75), 2);
        assert_eq!(upper_bound_seconds(0), 60);
        assert_eq!(upper_bound_seconds(1), 75);
        for seconds in [1, 59, 60, 61, 3_600, 86_400, 30 * 86_400] {
            let bucket = bucket_of(seconds);
            assert!(
                seconds < upper_bound_seconds(bucket),
                "{seconds} in {bucket}"
            );
            assert!(
                upper_bound_seconds(bucket) as f64 <= (seconds as f64 * GROWTH).max(60.0) + 1.0
            );
        }
    }

    #[test]
    fn a_percentile_is_the_bound_of_the_bucket_its_rank_falls_in() {
        let mut buckets = BTreeMap::new();
        buckets.insert(bucket_of(30), 2);
        buckets.insert(bucket_of(3_600), 2);
        assert_eq!(percentile(&buckets, 0.5), Some(60));
        assert_eq!(
            percentile(&buckets, 0.9),
            Some(upper_bound_seconds(bucket_of(3_600)))
        );
        assert_eq!(percentile(&BTreeMap::new(), 0.5), None);
    }
}
