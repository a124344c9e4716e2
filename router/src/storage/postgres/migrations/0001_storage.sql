-- leadrouter storage on PostgreSQL, version 1: every guarantee of the storage contract
-- (DESIGN §6) is a key or a constraint here. Text keys sort as bytes (COLLATE "C"), as the
-- embedded backends sort them.

-- Routing decisions, one per lead. `version` is the contract's replace-at-version; an open
-- offer's expiry (`offer_expires_at`) and its sweeper's lease live on the row.
CREATE TABLE decisions (
    lead_id          text COLLATE "C" PRIMARY KEY,
    version          integer NOT NULL CHECK (version >= 0),
    day              integer NOT NULL,
    offer_expires_at bigint,
    lease_until      bigint,
    record           bytea NOT NULL
);
CREATE INDEX decisions_open_offers ON decisions (offer_expires_at)
    WHERE offer_expires_at IS NOT NULL;

-- Each guide's leads per business day: taken only below the guide's capacity.
CREATE TABLE guide_counts (
    day      integer NOT NULL,
    guide_id text COLLATE "C" NOT NULL,
    used     integer NOT NULL CHECK (used >= 0),
    capacity integer NOT NULL CHECK (capacity >= 0),
    CHECK (used <= capacity),
    PRIMARY KEY (day, guide_id)
);

-- Members' trails: `(member_id, seq)` unique; the head moves only from the head read.
-- (An event's ledger cursor is unique through its id key in trail_keys.)
CREATE TABLE trail_heads (
    member_id text COLLATE "C" PRIMARY KEY,
    seq       bigint NOT NULL CHECK (seq >= 1),
    hash      text NOT NULL
);

CREATE TABLE trail_events (
    member_id     text COLLATE "C" NOT NULL,
    seq           bigint NOT NULL CHECK (seq >= 1),
    line          text NOT NULL,
    occurred_at   bigint NOT NULL,
    -- Ledger events (orders 'o', refunds 'r', adjustments 'a'): their cursor.
    ledger_tag    text COLLATE "C" CHECK (ledger_tag IN ('a', 'o', 'r')),
    ledger_id     text COLLATE "C",
    -- Refunds and adjustments: the order they follow.
    follows_order text COLLATE "C",
    -- Bindings: the guide bound.
    bound_guide   text COLLATE "C",
    is_binding    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (member_id, seq),
    CHECK ((ledger_tag IS NULL) = (ledger_id IS NULL))
);
CREATE INDEX trail_events_ledger ON trail_events (occurred_at, ledger_tag, ledger_id)
    WHERE ledger_tag IS NOT NULL;
CREATE INDEX trail_events_follow_ups ON trail_events (follows_order, member_id, seq)
    WHERE follows_order IS NOT NULL;
CREATE INDEX trail_events_bindings ON trail_events (member_id, seq)
    WHERE is_binding;
CREATE INDEX trail_events_bound_guide ON trail_events (bound_guide, member_id)
    WHERE bound_guide IS NOT NULL;

-- Idempotency keys (touch 't', order 'o', refund 'r', adjustment 'a'): one event each.
CREATE TABLE trail_keys (
    tag       text COLLATE "C" NOT NULL CHECK (tag IN ('t', 'o', 'r', 'a')),
    id        text COLLATE "C" NOT NULL,
    member_id text COLLATE "C" NOT NULL,
    seq       bigint NOT NULL,
    PRIMARY KEY (tag, id),
    FOREIGN KEY (member_id, seq) REFERENCES trail_events (member_id, seq)
);

-- The audit log: numbered by the store, without gaps.
CREATE TABLE audit (
    seq  bigint PRIMARY KEY CHECK (seq >= 1),
    line text NOT NULL
);

-- Disputes: numbered by the store; one open dispute per order, one dispute per request id.
CREATE TABLE disputes (
    seq        bigint PRIMARY KEY CHECK (seq >= 1),
    order_id   text COLLATE "C" NOT NULL,
    request_id text COLLATE "C" UNIQUE,
    open       boolean NOT NULL,
    line       text NOT NULL
);
CREATE UNIQUE INDEX disputes_one_open_per_order ON disputes (order_id) WHERE open;

-- The network in service: one row, saved only at the version read.
CREATE TABLE network (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    version text NOT NULL,
    spec    text NOT NULL
);
