-- Version 3: what each replica serves, as it says every second (its network version, the
-- learned models in service and a digest of its rule sets), so that each replica can tell when
-- another serves something else. Not a guarantee of the contract: old rows are only history.
CREATE TABLE replicas (
    id              text COLLATE "C" PRIMARY KEY,
    address         text NOT NULL,
    started_at      bigint NOT NULL,
    seen_at         bigint NOT NULL,
    network_version text NOT NULL,
    models          text NOT NULL,
    rules           text NOT NULL
);
CREATE INDEX replicas_seen ON replicas (seen_at);
