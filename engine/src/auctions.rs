//! The auction workload: the schema's statuses, demo data, and status counts.
//!
//! Auctions move draft → scheduled → active → ended → settled | unsold. Times are Unix
//! milliseconds (see the migrations).

use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Executor};

pub use leasewatch_types::AuctionStatus;

/// How many auctions are in each status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts(pub Vec<(AuctionStatus, i64)>);

impl StatusCounts {
    /// The count for one status (0 when none).
    pub fn get(&self, status: AuctionStatus) -> i64 {
        self.0
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }

    /// All auctions.
    pub fn total(&self) -> i64 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

/// Counts auctions by status, in life-cycle order, with zeros for empty statuses.
pub async fn status_counts<'c, E>(executor: E) -> Result<StatusCounts, sqlx::Error>
where
    E: Executor<'c, Database = Any>,
{
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM auctions GROUP BY status")
            .fetch_all(executor)
            .await?;
    let counts = AuctionStatus::ALL
        .iter()
        .copied()
        .map(|status| {
            let n = rows
                .iter()
                .find(|(s, _)| s.parse::<AuctionStatus>().ok() == Some(status))
                .map_or(0, |(_, n)| *n);
            (status, n)
        })
        .collect();
    Ok(StatusCounts(counts))
}

/// Seeds `count` scheduled auctions that start over the next couple of minutes and end soon
/// after, each with a few bids (some below the reserve), so the tasks have real work at once.
/// Returns the number of auctions inserted. One transaction: all or nothing.
pub async fn seed_demo(pool: &AnyPool, now_ms: i64, count: u32) -> Result<u32, sqlx::Error> {
    let mut rng = rand::rng();
    let mut tx = pool.begin().await?;
    for i in 0..count {
        let starts_at = now_ms + i64::from(i) * 10_000 + rng.random_range(0..5_000);
        let ends_at = starts_at + rng.random_range(45_000..120_000);
        let reserve: i64 = rng.random_range(50..200) * 100;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO auctions (title, status, reserve_cents, starts_at_ms, ends_at_ms, updated_at_ms) \
             VALUES ($1, 'scheduled', $2, $3, $4, $5) RETURNING id",
        )
        .bind(format!("Demo lot {}", i + 1))
        .bind(reserve)
        .bind(starts_at)
        .bind(ends_at)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        for b in 0..rng.random_range(0..5) {
            let amount: i64 = rng.random_range(20..300) * 100;
            let placed_at = rng.random_range(starts_at..ends_at);
            sqlx::query(
                "INSERT INTO bids (auction_id, bidder, amount_cents, placed_at_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(format!("bidder-{}", b + 1))
            .bind(amount)
            .bind(placed_at)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_column_value() {
        for status in AuctionStatus::ALL {
            assert_eq!(status.as_str().parse::<AuctionStatus>(), Ok(*status));
        }
        assert!("bogus".parse::<AuctionStatus>().is_err());
    }

    #[test]
    fn counts_sum_and_default_to_zero() {
        let counts = StatusCounts(vec![
            (AuctionStatus::Scheduled, 3),
            (AuctionStatus::Active, 2),
        ]);
        assert_eq!(counts.total(), 5);
        assert_eq!(counts.get(AuctionStatus::Active), 2);
        assert_eq!(counts.get(AuctionStatus::Unsold), 0);
    }
}
