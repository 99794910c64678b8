-- The tables of the WatchMe dashboard (see shared/BRIEF.md), for PostgreSQL / Supabase.
-- Every statement is idempotent: applying this file twice is harmless.

CREATE TABLE IF NOT EXISTS audio_files (
    device_id text NOT NULL,
    recorded_at timestamptz NOT NULL,
    file_path text NOT NULL,
    local_date text NOT NULL,
    time_block text NOT NULL,
    file_size bigint,
    duration_s double precision,
    sample_rate integer,
    decodes boolean,
    transcriptions_status text NOT NULL DEFAULT 'pending',
    behavior_features_status text NOT NULL DEFAULT 'pending',
    emotion_features_status text NOT NULL DEFAULT 'pending',
    error text,
    updated_at timestamptz,
    PRIMARY KEY (device_id, recorded_at)
);
CREATE INDEX IF NOT EXISTS audio_files_day ON audio_files (device_id, local_date);

CREATE TABLE IF NOT EXISTS vibe_whisper (
    device_id text NOT NULL,
    date text NOT NULL,
    time_block text NOT NULL,
    transcription text,
    model text,
    processed_at timestamptz,
    PRIMARY KEY (device_id, date, time_block)
);

CREATE TABLE IF NOT EXISTS behavior_yamnet (
    device_id text NOT NULL,
    date text NOT NULL,
    time_block text NOT NULL,
    events jsonb,
    top_events jsonb,
    model text,
    processed_at timestamptz,
    PRIMARY KEY (device_id, date, time_block)
);

CREATE TABLE IF NOT EXISTS behavior_summary (
    device_id text NOT NULL,
    date text NOT NULL,
    summary_ranking jsonb,
    time_blocks jsonb,
    processed_at timestamptz,
    PRIMARY KEY (device_id, date)
);

CREATE TABLE IF NOT EXISTS emotion_superb (
    device_id text NOT NULL,
    date text NOT NULL,
    time_block text NOT NULL,
    neutral double precision,
    happy double precision,
    angry double precision,
    sad double precision,
    voiced_seconds double precision,
    model text,
    processed_at timestamptz,
    PRIMARY KEY (device_id, date, time_block)
);

CREATE TABLE IF NOT EXISTS emotion_opensmile_summary (
    device_id text NOT NULL,
    date text NOT NULL,
    emotion_graph jsonb,
    processed_at timestamptz,
    PRIMARY KEY (device_id, date)
);

CREATE TABLE IF NOT EXISTS vibe_whisper_prompt (
    device_id text NOT NULL,
    date text NOT NULL,
    prompt text,
    processed_files integer,
    missing_files jsonb,
    generated_at timestamptz,
    PRIMARY KEY (device_id, date)
);

CREATE TABLE IF NOT EXISTS vibe_whisper_summary (
    device_id text NOT NULL,
    date text NOT NULL,
    vibe_scores jsonb,
    average_score double precision,
    positive_hours double precision,
    negative_hours double precision,
    neutral_hours double precision,
    insights text,
    vibe_changes jsonb,
    chart_path text,
    scorer text,
    processed_at timestamptz,
    PRIMARY KEY (device_id, date)
);
