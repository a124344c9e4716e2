-- Version 5: a route in one round trip. A route may start from what its replica last saw of
-- the lead and the member (nothing, for a lead and member it has not seen) instead of reading
-- them first; `leadrouter_route` then checks both in the same statement as the write and, where
-- they moved, returns what they are now instead of raising, so the route decides again at once:
--   outcome 0  stored (used: the taken guide's count, this decision included)
--   outcome 1  the lead has a decision (record: it)
--   outcome 4  the member's head is not the one named (head_seq, head_hash, binding_line: now)
-- The decision is made on the head named, so the head is checked whether or not the route
-- appends events. The other refusals raise as in version 2 (LR001 when another writer stored
-- the lead between the check and the insert, LR002, LR003, LR004 when the head moved between
-- the check and the append). `leadrouter_commit_route` stays for replicas of version 4 during a
-- rolling upgrade.

CREATE FUNCTION leadrouter_route(
    p_lead text, p_version integer, p_replaces integer, p_day integer,
    p_expires bigint, p_record bytea,
    p_count_days integer[], p_count_guides text[], p_count_caps integer[],
    p_give_back_day integer, p_give_back_guide text,
    p_at_member text, p_at_seq bigint,
    p_member text, p_expected bigint, p_head_seq bigint, p_head_hash text,
    p_seqs bigint[], p_lines text[], p_occurred bigint[], p_bound text[], p_bindings boolean[],
    p_asynchronous boolean
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
    RETURN QUERY SELECT 0, leadrouter_commit_route(
        p_lead, p_version, p_replaces, p_day, p_expires, p_record,
        p_count_days, p_count_guides, p_count_caps, p_give_back_day, p_give_back_guide,
        p_member, p_expected, p_head_seq, p_head_hash,
        p_seqs, p_lines, p_occurred, p_bound, p_bindings, p_asynchronous),
        NULL::bytea, NULL::bigint, NULL::text, NULL::text;
END
$$;
