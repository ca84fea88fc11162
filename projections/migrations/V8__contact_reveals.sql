-- Every request to reveal a reporter's contact in full (PIPL Art. 51: least privilege, and a
-- record of who saw what). Allowed or refused, it is recorded; nothing here is personal data
-- of the resident: they are named by their key's keyed hash only. Not a projection's table:
-- no rebuild touches it.
CREATE TABLE contact_reveals (
    reveal_id    bigserial PRIMARY KEY,
    requested_at timestamptz NOT NULL,
    -- Who asked: their grid id (a worker's, a supervisor's or an auditor's), and the role
    -- they asked in.
    requester    text NOT NULL,
    role         text NOT NULL,
    case_id      uuid NOT NULL,
    -- Whose contact: the resident's data key id (`rk-` and a keyed hash); NULL when the
    -- case has no sealed contact.
    resident_key text,
    reason       text NOT NULL,
    allowed      boolean NOT NULL,
    -- revealed | refused | erased | no_contact | no_key_store | legacy
    outcome      text NOT NULL,
    -- Why it was refused, in words.
    refusal      text
);
CREATE INDEX contact_reveals_by_case ON contact_reveals (case_id, reveal_id);
CREATE INDEX contact_reveals_by_requester ON contact_reveals (requester, reveal_id);
