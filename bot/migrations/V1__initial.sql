-- V1: jobs (history and restart recovery), per-guild settings, blocks and the moderators' audit log.
-- Timestamps are UTC ISO-8601 text with microseconds ("2026-01-02T03:04:05.000006+00:00"), so
-- they sort as text. Discord snowflakes fit SQLite's signed 64-bit INTEGER.

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at        TEXT    NOT NULL,
    user_id           INTEGER NOT NULL,
    user_name         TEXT    NOT NULL,
    guild_id          INTEGER,                      -- NULL for direct messages
    channel_id        INTEGER,
    kind              TEXT    NOT NULL CHECK (kind IN ('generate', 'edit', 'upscale')),
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

CREATE INDEX jobs_user_guild_id ON jobs (user_id, guild_id, id DESC);
CREATE INDEX jobs_status_id ON jobs (status, id);

CREATE TABLE guild_settings (
    guild_id            INTEGER PRIMARY KEY,
    default_model       TEXT,
    max_queued_per_user INTEGER,
    cooldown_s          REAL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE blocks (
    guild_id     INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    moderator_id INTEGER NOT NULL,
    reason       TEXT,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id     INTEGER NOT NULL,
    moderator_id INTEGER NOT NULL,
    action       TEXT    NOT NULL,
    target       TEXT,
    details      TEXT    NOT NULL CHECK (json_valid(details)),
    created_at   TEXT    NOT NULL
);

CREATE INDEX audit_guild_id ON audit (guild_id, id DESC);
