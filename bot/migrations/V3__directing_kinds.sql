-- V3: the directing jobs (issue 25) are kinds of their own: "extend" continues a clip, "restyle"
-- redraws one (both GPU jobs). SQLite cannot change a CHECK constraint in place, so the jobs table
-- is rebuilt: the old one is renamed first (its self-reference follows it), so dropping it later
-- fires no ON DELETE action on the new table's parent links.

ALTER TABLE jobs RENAME TO jobs_before_v3;

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at        TEXT    NOT NULL,
    user_id           INTEGER NOT NULL,
    user_name         TEXT    NOT NULL,
    guild_id          INTEGER,                      -- NULL for direct messages
    channel_id        INTEGER,
    kind              TEXT    NOT NULL
                      CHECK (kind IN ('generate', 'edit', 'upscale', 'extend', 'restyle')),
    params            TEXT    NOT NULL CHECK (json_valid(params)),
    prompt            TEXT,
    model             TEXT,
    seed              INTEGER,
    status            TEXT    NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    error             TEXT,
    output_path       TEXT,
    output_pruned     INTEGER NOT NULL DEFAULT 0 CHECK (output_pruned IN (0, 1)),
    parent_id         INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    message_id        INTEGER,
    application_id    INTEGER,
    interaction_token TEXT,
    queued_at         TEXT    NOT NULL,
    started_at        TEXT,
    finished_at       TEXT,
    timings           TEXT    CHECK (timings IS NULL OR json_valid(timings)),
    attempts          INTEGER NOT NULL DEFAULT 0
);

INSERT INTO jobs SELECT * FROM jobs_before_v3;

DROP TABLE jobs_before_v3;

CREATE INDEX jobs_user_guild_id ON jobs (user_id, guild_id, id DESC);
CREATE INDEX jobs_status_id ON jobs (status, id);
