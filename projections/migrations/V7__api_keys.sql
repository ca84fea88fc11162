-- API keys for other systems (issue 10, item 5): hotlines, kiosks, BI tools reading
-- indicators. Only the SHA-256 of a key is kept (keys are 256 random bits, shown once);
-- a key has a read-only role and optionally one district. Revoking keeps the row, so the
-- list shows who had access and until when.
--
-- Not a projection: nothing in the log builds it, rebuilds never touch it.

CREATE TABLE api_keys (
    name        text PRIMARY KEY,
    role        text NOT NULL CHECK (role IN ('auditor', 'district', 'metrics')),
    district    text,
    key_hash    text NOT NULL UNIQUE,
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CHECK (role <> 'district' OR district IS NOT NULL),
    CHECK (role <> 'metrics' OR district IS NULL)
);
