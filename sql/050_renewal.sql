-- Renewal schedule (issue 5). Additive: two columns on certificates and
-- two partial indexes, so the renewal scan costs O(rows it returns).
--
-- renew_at: when the renewal of this (active) certificate starts:
--   not_after - renew_before_days + a stable per-device jitter of up to
--   jitter_days. NULL: not scheduled yet (new rows; the renewal job fills
--   it in, and resets it when the [renewal] window settings change).
-- renewal: serial of the renewal in flight for this certificate (its
--   reserved / pending / delivered successor); NULL when none.
ALTER TABLE certificates ADD COLUMN renew_at INTEGER;
ALTER TABLE certificates ADD COLUMN renewal TEXT;

-- "Due for renewal": a range scan on status = 'active', renewal IS NULL,
-- renew_at <= now. The scan reads only this index (rowid and renew_at),
-- so its cost is O(rows returned) and its pages stay few. Only active
-- certificates without a renewal in flight are in it: reserving a renewal
-- removes the row from the (due, hence local) end of the index, and
-- reserved or pending certificates never enter it.
CREATE INDEX certificates_renew_due ON certificates (status, renewal,
	renew_at) WHERE status = 'active' AND renewal IS NULL;
-- Active certificates still to be scheduled (imported, re-enrolled...);
-- renewals are recorded with renew_at set and never enter it.
CREATE INDEX certificates_renew_unscheduled ON certificates (not_after)
	WHERE status = 'active' AND renew_at IS NULL;
-- Deliveries still being worked, in due order (terminal steps excluded).
CREATE INDEX deliveries_open ON deliveries (next_attempt_at)
	WHERE step NOT IN ('done', 'failed', 'cancelled');
