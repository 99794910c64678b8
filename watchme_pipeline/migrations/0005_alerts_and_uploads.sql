-- What the alert sensors read is one or two dates across the fleet (devices that recorded,
-- charts made, failed slots) and the failures since their cursor: indexes that keep those
-- reads proportional to a day, not to all history.

CREATE INDEX IF NOT EXISTS audio_files_date ON audio_files (local_date, device_id);
CREATE INDEX IF NOT EXISTS vibe_whisper_summary_date ON vibe_whisper_summary (date);
CREATE INDEX IF NOT EXISTS run_failures_failed_at ON run_failures (failed_at);

-- When the registered file was uploaded (its LastModified): raw_audio reads a file again only
-- when it was uploaded again, so a run decodes only what is new, not the whole day.
ALTER TABLE audio_files ADD COLUMN uploaded_at timestamptz;

-- The upload ledger (WATCHME_UPLOAD_QUEUE): each S3 notification is noted here before its
-- message is deleted, so a crash between the two neither loses nor doubles an upload; the
-- sensor requests a device-day's run once its oldest pending upload is WATCHME_RUN_DELAY_S
-- old, and forgets an upload once raw_audio has registered it. `sequencer` orders
-- notifications of one key (S3's own field, zero-padded): only a later one is a new upload.
CREATE TABLE IF NOT EXISTS uploads (
    file_path text PRIMARY KEY,
    device_id text NOT NULL,
    local_date text NOT NULL,
    size bigint,
    sequencer text NOT NULL DEFAULT '',
    noted_at timestamptz NOT NULL,
    requested_at timestamptz,
    run_key text,
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_pending ON uploads (requested_at, noted_at);
