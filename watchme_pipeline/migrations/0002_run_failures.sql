-- Every failed run, recorded by the run-failure sensor (the old dead-letter queue, visible).
CREATE TABLE IF NOT EXISTS run_failures (
    run_id text PRIMARY KEY,
    job_name text,
    partition text,
    steps text,
    error_class text,
    message text,
    failed_at timestamptz
);
