-- What the alert sensors read is one or two dates across the fleet (devices that recorded,
-- charts made, failed slots) and the failures since their cursor: indexes that keep those
-- reads proportional to a day, not to all history.

CREATE INDEX IF NOT EXISTS audio_files_date ON audio_files (local_date, device_id);
CREATE INDEX IF NOT EXISTS vibe_whisper_summary_date ON vibe_whisper_summary (date);
CREATE INDEX IF NOT EXISTS run_failures_failed_at ON run_failures (failed_at);

-- When the registered file was uploaded (its LastModified): raw_audio reads a file again only
-- when it was uploaded again, so a run decodes only what is new, not the whole day.
ALTER TABLE audio_files ADD COLUMN uploaded_at timestamptz;
