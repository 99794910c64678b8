-- Rows name everything that made them: `maker` is the stage, its logic version, the model and
-- the settings that change its output (language, VAD, runtime, ...); `model` stays the
-- model id the dashboard shows. A run compares makers, so a row made with other settings is
-- redone. Rows from before this migration have no maker: the next run that reaches their
-- day redoes them (nothing says how they were made).
-- `superseded` is the one record of which file of a slot is current (raw_audio decides it);
-- the status columns still say 'superseded' for the dashboard, but no reader uses them for it.

ALTER TABLE vibe_whisper ADD COLUMN maker text;
ALTER TABLE behavior_yamnet ADD COLUMN maker text;
ALTER TABLE emotion_superb ADD COLUMN maker text;
ALTER TABLE audio_files ADD COLUMN superseded boolean NOT NULL DEFAULT false;
UPDATE audio_files SET superseded = (transcriptions_status = 'superseded');
