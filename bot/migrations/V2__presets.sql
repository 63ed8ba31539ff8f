-- Presets: named styles a server's moderators define (/preset add), which members pick with
-- /video preset:. Each belongs to one server and is never seen from another.
CREATE TABLE presets (
    guild_id        INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    prompt_suffix   TEXT    NOT NULL DEFAULT '',
    negative_prompt TEXT    NOT NULL DEFAULT '',
    settings        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    created_by      INTEGER NOT NULL,
    created_at      TEXT    NOT NULL,
    PRIMARY KEY (guild_id, name)
);
