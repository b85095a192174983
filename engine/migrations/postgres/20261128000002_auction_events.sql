-- Every status change a task makes, with the instance that made it: proof that each auction is
-- transitioned and settled exactly once, however many instances run.
CREATE TABLE auction_events (
    id          BIGSERIAL PRIMARY KEY,
    auction_id  BIGINT NOT NULL REFERENCES auctions (id) ON DELETE CASCADE,
    from_status TEXT   NOT NULL,
    to_status   TEXT   NOT NULL,
    at_ms       BIGINT NOT NULL,
    instance    TEXT   NOT NULL
);
CREATE INDEX auction_events_auction ON auction_events (auction_id);
