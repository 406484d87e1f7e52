-- fleetcert schema, version 1. Times are integer Unix seconds (UTC);
-- certificate serials lower-case hex; SE serials 18 lower-case hex digits.

CREATE TABLE devices (
	device_id	TEXT PRIMARY KEY,		-- IoT Hub deviceId = cert CN
	se_serial	TEXT NOT NULL UNIQUE,
	hub		TEXT NOT NULL DEFAULT '',	-- [hub NAME]; '' = default
	auth_type	TEXT NOT NULL DEFAULT 'ca'
			CHECK (auth_type IN ('ca', 'selfsigned')),
	identity_key	BLOB,				-- SPKI DER of the slot-0 key
	owner		TEXT NOT NULL DEFAULT '',
	batch		TEXT NOT NULL DEFAULT '',
	status		TEXT NOT NULL DEFAULT 'active'
			CHECK (status IN ('active', 'suspended', 'revoked', 'decommissioned')),
	rekey		INTEGER NOT NULL DEFAULT 0,	-- per-device key rotation
	needs_reenrol	INTEGER NOT NULL DEFAULT 0,	-- expired before confirming
	created_at	INTEGER NOT NULL,
	updated_at	INTEGER NOT NULL
);
CREATE INDEX devices_owner ON devices (owner, device_id);
CREATE INDEX devices_batch ON devices (batch, device_id);
CREATE INDEX devices_status ON devices (status, device_id);

-- 'reserved': serial and renewal committed before signing, no DER yet.
CREATE TABLE certificates (
	serial		TEXT PRIMARY KEY,
	device_id	TEXT NOT NULL REFERENCES devices (device_id),
	der		BLOB,
	not_before	INTEGER,
	not_after	INTEGER,
	sha1		TEXT,				-- upper-case hex, IoT Hub thumbprint
	sha256		TEXT,
	status		TEXT NOT NULL
			CHECK (status IN ('reserved', 'pending', 'delivered', 'active',
			                  'superseded', 'revoked', 'expired')),
	revoked_at	INTEGER,
	revocation_reason INTEGER,			-- RFC 5280 CRLReason
	issued_by	TEXT NOT NULL
			CHECK (issued_by IN ('renewal', 'reenrolment', 'import', 'operator')),
	renewed_from	TEXT REFERENCES certificates (serial),
	created_at	INTEGER NOT NULL,
	updated_at	INTEGER NOT NULL
);
CREATE INDEX certificates_status_not_after ON certificates (status, not_after);
CREATE INDEX certificates_device ON certificates (device_id, created_at);
CREATE INDEX certificates_renewed_from ON certificates (renewed_from);
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;

-- The outbox: one row per certificate to deliver.
CREATE TABLE deliveries (
	serial		TEXT PRIMARY KEY REFERENCES certificates (serial),
	device_id	TEXT NOT NULL REFERENCES devices (device_id),
	step		TEXT NOT NULL,
	attempts	INTEGER NOT NULL DEFAULT 0,
	next_attempt_at	INTEGER NOT NULL,
	last_error	TEXT,
	created_at	INTEGER NOT NULL,
	updated_at	INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (step, next_attempt_at);
CREATE INDEX deliveries_device ON deliveries (device_id);

CREATE TABLE revocations (
	id		INTEGER PRIMARY KEY,
	selector	TEXT NOT NULL,			-- JSON
	reason		TEXT NOT NULL,
	requester	TEXT NOT NULL,
	dry_run		INTEGER NOT NULL DEFAULT 0,
	matched		INTEGER NOT NULL DEFAULT 0,
	propagated	INTEGER NOT NULL DEFAULT 0,
	state		TEXT NOT NULL DEFAULT 'pending',
	last_error	TEXT,
	created_at	INTEGER NOT NULL,
	updated_at	INTEGER NOT NULL
);
CREATE INDEX revocations_state ON revocations (state, id);

CREATE TABLE challenges (
	nonce		BLOB PRIMARY KEY,		-- 32 random bytes
	se_serial	TEXT NOT NULL,
	expires_at	INTEGER NOT NULL,
	used		INTEGER NOT NULL DEFAULT 0,
	created_at	INTEGER NOT NULL
);
CREATE INDEX challenges_expires ON challenges (expires_at);

-- Append-only, hash-chained: hash = SHA-256(prev_hash || canonical row).
CREATE TABLE audit (
	id		INTEGER PRIMARY KEY,
	at		INTEGER NOT NULL,
	actor		TEXT NOT NULL,
	action		TEXT NOT NULL,
	device_id	TEXT,
	serial		TEXT,
	detail		TEXT,
	prev_hash	BLOB NOT NULL,
	hash		BLOB NOT NULL
);
CREATE INDEX audit_device ON audit (device_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;

CREATE TABLE meta (
	key		TEXT PRIMARY KEY,
	value		TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('crl_number', '0');
