-- The auction workload the background tasks act on. Times are Unix milliseconds (UTC) so the
-- same queries run on PostgreSQL and SQLite through sqlx's `Any` driver.
CREATE TABLE auctions (
    id             BIGSERIAL PRIMARY KEY,
    title          TEXT   NOT NULL,
    status         TEXT   NOT NULL DEFAULT 'draft'
                   CHECK (status IN ('draft', 'scheduled', 'active', 'ended', 'settled', 'unsold')),
    reserve_cents  BIGINT NOT NULL DEFAULT 0 CHECK (reserve_cents >= 0),
    starts_at_ms   BIGINT NOT NULL,
    ends_at_ms     BIGINT NOT NULL,
    winning_bid_id BIGINT,
    updated_at_ms  BIGINT NOT NULL,
    CHECK (ends_at_ms > starts_at_ms)
);
CREATE INDEX auctions_status_starts ON auctions (status, starts_at_ms);
CREATE INDEX auctions_status_ends ON auctions (status, ends_at_ms);

CREATE TABLE bids (
    id           BIGSERIAL PRIMARY KEY,
    auction_id   BIGINT NOT NULL REFERENCES auctions (id) ON DELETE CASCADE,
    bidder       TEXT   NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    placed_at_ms BIGINT NOT NULL
);
CREATE INDEX bids_auction_amount ON bids (auction_id, amount_cents DESC);
