-- The auction workload the background tasks act on. Times are Unix milliseconds (UTC) so the
-- same queries run on PostgreSQL and SQLite through sqlx's `Any` driver.
CREATE TABLE auctions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    title          TEXT    NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'draft'
                   CHECK (status IN ('draft', 'scheduled', 'active', 'ended', 'settled', 'unsold')),
    reserve_cents  INTEGER NOT NULL DEFAULT 0 CHECK (reserve_cents >= 0),
    starts_at_ms   INTEGER NOT NULL,
    ends_at_ms     INTEGER NOT NULL,
    winning_bid_id INTEGER,
    updated_at_ms  INTEGER NOT NULL,
    CHECK (ends_at_ms > starts_at_ms)
);
CREATE INDEX auctions_status_starts ON auctions (status, starts_at_ms);
CREATE INDEX auctions_status_ends ON auctions (status, ends_at_ms);

CREATE TABLE bids (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    auction_id   INTEGER NOT NULL REFERENCES auctions (id) ON DELETE CASCADE,
    bidder       TEXT    NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    placed_at_ms INTEGER NOT NULL
);
CREATE INDEX bids_auction_amount ON bids (auction_id, amount_cents DESC);
