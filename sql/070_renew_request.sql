-- Operator renewal requests (POST /v1/devices/{id}/renew). Additive.
--
-- rekey_once: a one-shot "ask the device for a new key" on its next
-- renewal. Set by the request, read with devices.rekey when the renewal
-- batch is built, cleared in the transaction that records the renewal.
ALTER TABLE devices ADD COLUMN rekey_once INTEGER NOT NULL DEFAULT 0;
