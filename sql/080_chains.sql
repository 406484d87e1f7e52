-- The chain each issued certificate was signed under (a CA reload can
-- replace the intermediate while deliveries of certificates it signed are
-- still pending: they must go out with the chain that verifies them).
-- Additive.
--
-- chains: one row per distinct chain PEM (sha256 = SHA-256 of the PEM
-- text, lower-case hex). certificates.chain_id: NULL for certificates
-- recorded before this migration, imported or re-enrolled ones (their
-- chain, if any, went out with them); delivery then sends the current
-- chain, as before.
CREATE TABLE chains (
	id		INTEGER PRIMARY KEY,
	sha256		TEXT NOT NULL UNIQUE,
	pem		TEXT NOT NULL,
	created_at	INTEGER NOT NULL
);
ALTER TABLE certificates ADD COLUMN chain_id INTEGER REFERENCES chains (id);
