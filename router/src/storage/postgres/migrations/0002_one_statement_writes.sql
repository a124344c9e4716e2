-- Version 2: a route's commit and a trail append as one statement each (one round trip, one
-- implicit transaction), the same conditions as version 1's statements, in the same order
-- (the decision, the counts in key order, the member's head, the events, their keys). A
-- refusal raises one of these SQLSTATEs, which rolls the whole statement back:
--   LR001 the lead has a decision (replayed)      LR002 the decision moved (replace)
--   LR003 the guide is at capacity                LR004 the member's head moved
--   LR005 an event's id key is taken

CREATE FUNCTION leadrouter_append(
    p_member text, p_expected bigint, p_head_seq bigint, p_head_hash text,
    p_seqs bigint[], p_lines text[], p_occurred bigint[], p_ledger_tags text[],
    p_ledger_ids text[], p_follows text[], p_bound text[], p_bindings boolean[],
    p_key_tags text[], p_key_ids text[], p_key_seqs bigint[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    IF p_expected = 0 THEN
        INSERT INTO trail_heads (member_id, seq, hash) VALUES (p_member, p_head_seq, p_head_hash)
            ON CONFLICT (member_id) DO NOTHING;
    ELSE
        UPDATE trail_heads SET seq = p_head_seq, hash = p_head_hash
            WHERE member_id = p_member AND seq = p_expected;
    END IF;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n = 0 THEN
        RAISE EXCEPTION 'the member''s head moved' USING ERRCODE = 'LR004';
    END IF;
    INSERT INTO trail_events (member_id, seq, line, occurred_at, ledger_tag, ledger_id,
                              follows_order, bound_guide, is_binding)
        SELECT p_member, s, l, o, lt, li, f, b, ib
        FROM unnest(p_seqs, p_lines, p_occurred, p_ledger_tags, p_ledger_ids, p_follows,
                    p_bound, p_bindings) AS t(s, l, o, lt, li, f, b, ib);
    IF coalesce(array_length(p_key_tags, 1), 0) > 0 THEN
        INSERT INTO trail_keys (tag, id, member_id, seq)
            SELECT kt, ki, p_member, ks FROM unnest(p_key_tags, p_key_ids, p_key_seqs) AS k(kt, ki, ks)
            ON CONFLICT (tag, id) DO NOTHING;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n < array_length(p_key_tags, 1) THEN
            RAISE EXCEPTION 'an event''s id key is taken' USING ERRCODE = 'LR005';
        END IF;
    END IF;
END
$$;

CREATE FUNCTION leadrouter_commit_route(
    p_lead text, p_version integer, p_replaces integer, p_day integer,
    p_expires bigint, p_record bytea,
    p_count_days integer[], p_count_guides text[], p_count_caps integer[],
    p_give_back_day integer, p_give_back_guide text,
    p_member text, p_expected bigint, p_head_seq bigint, p_head_hash text,
    p_seqs bigint[], p_lines text[], p_occurred bigint[], p_bound text[], p_bindings boolean[],
    p_asynchronous boolean
) RETURNS integer LANGUAGE plpgsql AS $$
-- p_count_*: the counts touched in key order; a capacity takes one below it, NULL gives one
-- back. p_give_back_*: a release of the guide and day just taken (the count stays). Returns
-- the taken guide's count, this decision included (NULL when nothing is taken).
DECLARE
    v_n integer;
    v_used integer;
    v_i integer;
BEGIN
    IF p_asynchronous THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    IF p_replaces IS NULL THEN
        INSERT INTO decisions (lead_id, version, day, offer_expires_at, record)
            VALUES (p_lead, p_version, p_day, p_expires, p_record)
            ON CONFLICT (lead_id) DO NOTHING;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n = 0 THEN
            RAISE EXCEPTION 'the lead has a decision' USING ERRCODE = 'LR001';
        END IF;
    ELSE
        UPDATE decisions SET version = p_version, day = p_day, offer_expires_at = p_expires,
               lease_until = NULL, record = p_record
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
    RETURN v_used;
END
$$;

-- A route's reads in one statement: the lead's decision, and the member's head with its
-- latest binding, as of one snapshot.
CREATE FUNCTION leadrouter_route_state(p_lead text, p_member text)
RETURNS TABLE (record bytea, head_seq bigint, head_hash text, binding_line text)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT d.record FROM decisions d WHERE d.lead_id = p_lead),
           h.seq, h.hash,
           (SELECT e.line FROM trail_events e
             WHERE p_member IS NOT NULL AND e.member_id = p_member AND e.is_binding
             ORDER BY e.seq DESC LIMIT 1)
    FROM (SELECT 1) AS one
    LEFT JOIN trail_heads h ON p_member IS NOT NULL AND h.member_id = p_member
$$;
