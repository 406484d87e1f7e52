-- Revocation propagation, bulk requests and drift (issue 8). Additive.
--
-- propagation: what a revocation still owes the hub, one row per device
-- (its latest action). state pending -> inflight (committed before the hub
-- call, with the batch number) -> done. A row found inflight after a crash
-- is re-read at the hub before anything is resent. rank orders the work:
-- single revocations (rank 0) before bulk ones (request id << 32 | the
-- position the selector gave), so earlier requests finish first.
CREATE TABLE propagation (
	device_id	TEXT PRIMARY KEY REFERENCES devices (device_id),
	hub		TEXT NOT NULL DEFAULT '',
	action		TEXT NOT NULL CHECK (action IN ('disable', 'delete')),
	reason		TEXT NOT NULL,			-- statusReason at the hub
	revocation_id	INTEGER REFERENCES revocations (id),
	state		TEXT NOT NULL DEFAULT 'pending'
			CHECK (state IN ('pending', 'inflight', 'done')),
	rank		INTEGER NOT NULL DEFAULT 0,
	batch		INTEGER,
	attempts	INTEGER NOT NULL DEFAULT 0,
	last_error	TEXT,
	created_at	INTEGER NOT NULL,
	updated_at	INTEGER NOT NULL
);
CREATE INDEX propagation_todo ON propagation (hub, state, rank, device_id)
	WHERE state != 'done';
CREATE INDEX propagation_request ON propagation (revocation_id, state);

ALTER TABLE revocations ADD COLUMN estimate_seconds INTEGER;
ALTER TABLE revocations ADD COLUMN crl_at INTEGER;
ALTER TABLE revocations ADD COLUMN finished_at INTEGER;

-- Reconciliation findings of the last pass, replaced by each pass.
CREATE TABLE drift (
	kind		TEXT NOT NULL,
	device_id	TEXT NOT NULL,
	detail		TEXT,
	seen_at		INTEGER NOT NULL,
	PRIMARY KEY (kind, device_id)
);

INSERT INTO meta (key, value) VALUES ('propagation_batch', '0');
