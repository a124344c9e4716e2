-- Version 4: audit entries under a key, written once however many writers complete the action
-- (a dispute's resolution, which a second reviewer or another replica's recovery may finish).
CREATE TABLE audit_keys (
    key text COLLATE "C" PRIMARY KEY,
    seq bigint NOT NULL REFERENCES audit (seq)
);
