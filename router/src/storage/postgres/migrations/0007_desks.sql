-- Version 7: the guides' side. A decision's guide (the desk that lists it for its business
-- day) and the store whose queue holds it are columns with their own indexes, written in the
-- same statement as the decision; offer notices are rows written in that statement too.
--
-- Notices are read in the order (xid, seq) and only behind the oldest transaction still
-- running (`xid < pg_snapshot_xmin(pg_current_snapshot())`): every transaction older than that
-- has ended, so no notice can later appear before one a reader has passed. A long-running
-- transaction on the database holds the stream back until it ends (never reorders it).
--
-- `leadrouter_route_v7` is `leadrouter_route` (version 5) with those writes; the earlier
-- functions stay for replicas of versions 5 and 6 during a rolling upgrade (their decisions
-- carry no desk columns until written again; the binary that applies this migration fills the
-- columns of the rows already there).

ALTER TABLE decisions
    ADD COLUMN guide_id    text COLLATE "C",
    ADD COLUMN queue_store text COLLATE "C",
    ADD COLUMN decided_at  bigint;
CREATE INDEX decisions_desks ON decisions (guide_id, day) WHERE guide_id IS NOT NULL;
CREATE INDEX decisions_queues ON decisions (queue_store, decided_at, lead_id)
    WHERE queue_store IS NOT NULL;

CREATE TABLE offer_notices (
    xid      xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq      bigserial,
    guide_id text COLLATE "C" NOT NULL,
    store_id text COLLATE "C" NOT NULL,
    at_ms    bigint NOT NULL,
    body     text NOT NULL,
    PRIMARY KEY (xid, seq)
);
CREATE INDEX offer_notices_guides ON offer_notices (guide_id, xid, seq);
CREATE INDEX offer_notices_stores ON offer_notices (store_id, xid, seq);
CREATE INDEX offer_notices_age ON offer_notices (at_ms);

CREATE FUNCTION leadrouter_commit_route_v7(
    p_lead text, p_version integer, p_replaces integer, p_day integer,
    p_expires bigint, p_record bytea,
    p_count_days integer[], p_count_guides text[], p_count_caps integer[],
    p_give_back_day integer, p_give_back_guide text,
    p_member text, p_expected bigint, p_head_seq bigint, p_head_hash text,
    p_seqs bigint[], p_lines text[], p_occurred bigint[], p_bound text[], p_bindings boolean[],
    p_asynchronous boolean,
    p_guide text, p_queue text, p_decided_at bigint,
    p_n_guides text[], p_n_stores text[], p_n_at bigint[], p_n_bodies text[]
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
    v_used integer;
    v_i integer;
BEGIN
    IF p_asynchronous THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    IF p_replaces IS NULL THEN
        INSERT INTO decisions (lead_id, version, day, offer_expires_at, record, guide_id,
                               queue_store, decided_at)
            VALUES (p_lead, p_version, p_day, p_expires, p_record, p_guide, p_queue,
                    p_decided_at)
            ON CONFLICT (lead_id) DO NOTHING;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n = 0 THEN
            RAISE EXCEPTION 'the lead has a decision' USING ERRCODE = 'LR001';
        END IF;
    ELSE
        UPDATE decisions SET version = p_version, day = p_day, offer_expires_at = p_expires,
               lease_until = NULL, record = p_record, guide_id = p_guide,
               queue_store = p_queue, decided_at = p_decided_at
            WHERE lead_id = p_lead AND version = p_replaces;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n = 0 THEN
            RAISE EXCEPTION 'the decision moved' USING ERRCODE = 'LR002';
        END IF;
    END IF;
    FOR v_i IN 1 .. coalesce(array_length(p_count_days, 1), 0) LOOP
        IF p_count_caps[v_i] IS NULL THEN
            UPDATE guide_counts SET used = guide_counts.used - 1
                WHERE day = p_count_days[v_i] AND guide_id = p_count_guides[v_i]
                  AND guide_counts.used > 0;
        ELSIF p_count_caps[v_i] <= 0 THEN
            RAISE EXCEPTION 'the guide is at capacity' USING ERRCODE = 'LR003';
        ELSE
            INSERT INTO guide_counts AS g (day, guide_id, used, capacity)
                VALUES (p_count_days[v_i], p_count_guides[v_i], 1, p_count_caps[v_i])
                ON CONFLICT (day, guide_id) DO UPDATE SET used = g.used + 1,
                    capacity = EXCLUDED.capacity
                WHERE g.used < EXCLUDED.capacity
                RETURNING g.used INTO v_used;
            IF v_used IS NULL THEN
                RAISE EXCEPTION 'the guide is at capacity' USING ERRCODE = 'LR003';
            END IF;
        END IF;
    END LOOP;
    IF p_give_back_guide IS NOT NULL THEN
        UPDATE guide_counts SET used = guide_counts.used - 1
            WHERE day = p_give_back_day AND guide_id = p_give_back_guide
              AND guide_counts.used > 0;
    END IF;
    IF p_member IS NOT NULL THEN
        PERFORM leadrouter_append(
            p_member, p_expected, p_head_seq, p_head_hash, p_seqs, p_lines, p_occurred,
            array_fill(NULL::text, ARRAY[array_length(p_seqs, 1)]),
            array_fill(NULL::text, ARRAY[array_length(p_seqs, 1)]),
            array_fill(NULL::text, ARRAY[array_length(p_seqs, 1)]),
            p_bound, p_bindings, ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::bigint[]);
    END IF;
    IF coalesce(array_length(p_n_guides, 1), 0) > 0 THEN
        INSERT INTO offer_notices (guide_id, store_id, at_ms, body)
            SELECT g, s, a, b FROM unnest(p_n_guides, p_n_stores, p_n_at, p_n_bodies)
                WITH ORDINALITY AS n(g, s, a, b, i) ORDER BY i;
    END IF;
    RETURN v_used;
END
$$;

CREATE FUNCTION leadrouter_route_v7(
    p_lead text, p_version integer, p_replaces integer, p_day integer,
    p_expires bigint, p_record bytea,
    p_count_days integer[], p_count_guides text[], p_count_caps integer[],
    p_give_back_day integer, p_give_back_guide text,
    p_at_member text, p_at_seq bigint,
    p_member text, p_expected bigint, p_head_seq bigint, p_head_hash text,
    p_seqs bigint[], p_lines text[], p_occurred bigint[], p_bound text[], p_bindings boolean[],
    p_asynchronous boolean,
    p_guide text, p_queue text, p_decided_at bigint,
    p_n_guides text[], p_n_stores text[], p_n_at bigint[], p_n_bodies text[]
) RETURNS TABLE (outcome integer, used integer, record bytea, head_seq bigint,
                 head_hash text, binding_line text)
LANGUAGE plpgsql AS $$
DECLARE
    v_record bytea;
    v_seq bigint;
    v_hash text;
BEGIN
    IF p_replaces IS NULL THEN
        SELECT d.record INTO v_record FROM decisions d WHERE d.lead_id = p_lead;
        IF FOUND THEN
            RETURN QUERY SELECT 1, NULL::integer, v_record, NULL::bigint, NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;
    IF p_at_member IS NOT NULL THEN
        SELECT h.seq, h.hash INTO v_seq, v_hash FROM trail_heads h WHERE h.member_id = p_at_member;
        IF coalesce(v_seq, 0) <> p_at_seq THEN
            RETURN QUERY SELECT 4, NULL::integer, NULL::bytea, v_seq, v_hash,
                (SELECT e.line FROM trail_events e
                  WHERE e.member_id = p_at_member AND e.is_binding
                  ORDER BY e.seq DESC LIMIT 1);
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT 0, leadrouter_commit_route_v7(
        p_lead, p_version, p_replaces, p_day, p_expires, p_record,
        p_count_days, p_count_guides, p_count_caps, p_give_back_day, p_give_back_guide,
        p_member, p_expected, p_head_seq, p_head_hash,
        p_seqs, p_lines, p_occurred, p_bound, p_bindings, p_asynchronous,
        p_guide, p_queue, p_decided_at, p_n_guides, p_n_stores, p_n_at, p_n_bodies),
        NULL::bytea, NULL::bigint, NULL::text, NULL::text;
END
$$;
