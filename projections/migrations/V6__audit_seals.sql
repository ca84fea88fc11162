-- The engine's seal on each commit (issue 10, item 4): every audit entry keeps the seal of
-- the commit its event came in, so `wangge audit verify` can check it against the keyring of
-- public keys and name an event another writer slipped into the log. Not part of the hashed
-- entry: a seal vouches for itself (an Ed25519 signature by the engine's key).
--
-- Entries written before this release have no seal (NULL): their commits were not sealed
-- either, and verification reports them as unsealed unless accepted below a log position
-- (`--allow-unsealed-before`). Nothing is folded again.

ALTER TABLE audit_trail
    -- The commit's events: sequences seal_first_sequence..=seal_last_sequence of the case.
    ADD COLUMN seal_first_sequence bigint,
    ADD COLUMN seal_last_sequence  bigint,
    -- The `Wangge-Seal` header as read: `<key id>:<base64 signature>`.
    ADD COLUMN seal                text COLLATE "C",
    -- The `Wangge-Seal-Link` header as read, hex.
    ADD COLUMN seal_link           text COLLATE "C",
    -- SHA-256 of the commit's payload bytes as the projection read them, hex.
    ADD COLUMN seal_payload_sha256 text COLLATE "C";
