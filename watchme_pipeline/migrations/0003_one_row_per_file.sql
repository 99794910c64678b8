-- One row per recorded file. Keys …/09-00/audio.wav and …/09-00-00/audio.wav parse to the same
-- recorded_at, the old primary key: the second upload overwrote the first row without a word.
-- The key is now (device_id, file_path): both are kept, the later is current and the earlier
-- superseded. Rows are moved, not lost. Plain SQL that PostgreSQL and SQLite both run
-- (SQLite cannot change a primary key in place, so the table is rebuilt on both).
-- Also: audio_files keeps where the voice detector found speech (found once by raw_audio,
-- read by transcripts and emotion_scores), and vibe_whisper_prompt keeps the slot summaries the prompt was built from (mood_chart
-- reads what vibe_prompt produced instead of rebuilding it from four tables).

CREATE TABLE audio_files_0003 (
    device_id text NOT NULL,
    file_path text NOT NULL,
    recorded_at timestamptz NOT NULL,
    local_date text NOT NULL,
    time_block text NOT NULL,
    file_size bigint,
    duration_s double precision,
    sample_rate integer,
    decodes boolean,
    speech_segments jsonb,
    transcriptions_status text NOT NULL DEFAULT 'pending',
    behavior_features_status text NOT NULL DEFAULT 'pending',
    emotion_features_status text NOT NULL DEFAULT 'pending',
    error text,
    updated_at timestamptz,
    CONSTRAINT audio_files_file_pkey PRIMARY KEY (device_id, file_path)
);

INSERT INTO audio_files_0003 (device_id, file_path, recorded_at, local_date, time_block,
    file_size, duration_s, sample_rate, decodes, transcriptions_status,
    behavior_features_status, emotion_features_status, error, updated_at)
SELECT device_id, file_path, recorded_at, local_date, time_block, file_size, duration_s,
    sample_rate, decodes, transcriptions_status, behavior_features_status,
    emotion_features_status, error, updated_at
FROM audio_files;

DROP TABLE audio_files;
ALTER TABLE audio_files_0003 RENAME TO audio_files;
CREATE INDEX audio_files_day ON audio_files (device_id, local_date);
CREATE INDEX audio_files_recorded ON audio_files (device_id, recorded_at);

ALTER TABLE vibe_whisper_prompt ADD COLUMN slots jsonb;
