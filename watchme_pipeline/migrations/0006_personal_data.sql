-- A person's data (privacy/): the audit of forget, export and readmit requests (counts per
-- place, never content; the latest forget or readmit of a device says whether its uploads are
-- refused), and when audio retention deleted a recording's audio (its results stay).

CREATE TABLE IF NOT EXISTS data_requests (
    request_id text PRIMARY KEY,
    device_id text NOT NULL,
    kind text NOT NULL,
    requested_at timestamptz NOT NULL,
    finished_at timestamptz,
    counts jsonb
);
CREATE INDEX IF NOT EXISTS data_requests_device ON data_requests (device_id, kind);

ALTER TABLE audio_files ADD COLUMN audio_deleted_at timestamptz;
