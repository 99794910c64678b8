-- Whose voice each turn is (stages/speakers.py, issue #33): the turns and their voices per
-- slot, who spoke each turn, the devices' wearer profiles; and the emotion rows' seconds of
-- wearer and other speech.

CREATE TABLE IF NOT EXISTS speaker_turns (
    device_id text NOT NULL,
    date text NOT NULL,
    time_block text NOT NULL,
    turns jsonb,
    speech_seconds double precision,
    wearer_seconds double precision,
    other_seconds double precision,
    model text,
    maker text,
    processed_at timestamptz,
    PRIMARY KEY (device_id, date, time_block)
);

CREATE TABLE IF NOT EXISTS speech_segments (
    device_id text NOT NULL,
    date text NOT NULL,
    time_block text NOT NULL,
    start_s double precision NOT NULL,
    end_s double precision,
    speaker text,
    confidence double precision,
    maker text,
    processed_at timestamptz,
    PRIMARY KEY (device_id, date, time_block, start_s)
);

CREATE TABLE IF NOT EXISTS speaker_profiles (
    device_id text NOT NULL,
    version text NOT NULL,
    rule text,
    history_key text,
    date text,
    first_date text,
    params jsonb,
    made_at timestamptz,
    PRIMARY KEY (device_id, version)
);
CREATE INDEX IF NOT EXISTS speaker_profiles_history ON speaker_profiles (device_id, history_key);

ALTER TABLE emotion_superb ADD COLUMN wearer_seconds double precision;
ALTER TABLE emotion_superb ADD COLUMN other_seconds double precision;

-- The VAD's segments of a recording keep their own name: speech_segments is now the table of
-- who spoke.
ALTER TABLE audio_files RENAME COLUMN speech_segments TO vad_segments;
ALTER TABLE vibe_whisper ADD COLUMN lines jsonb;
