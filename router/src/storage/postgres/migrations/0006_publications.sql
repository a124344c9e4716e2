-- Version 6: what a writer publishes for every replica to take up (the learned models in
-- service), one row per name, numbered by the database; a publication notifies the network's
-- channel so that the replicas take it up at once.
CREATE TABLE publications (
    name         text COLLATE "C" PRIMARY KEY,
    seq          bigint NOT NULL CHECK (seq > 0),
    published_at bigint NOT NULL,
    by_whom      text NOT NULL,
    body         bytea NOT NULL
);
