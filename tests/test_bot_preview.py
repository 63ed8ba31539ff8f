"""Live previews in a running job's message, end to end: the real discord.py bot on the tiny models
against the fake Discord; and the fake's edit semantics they rely on (an edit's ``attachments``
array leaves exactly what it lists, as Discord does)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import aiohttp
from bot_helpers import make_bot, make_settings, wait_for_result
from fake_discord import FakeDiscord
from PIL import Image

pytest_plugins = ("fake_discord.fixtures",)


def _form(payload: dict[str, Any], *names: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("payload_json", json.dumps(payload), content_type="application/json")
    for index, name in enumerate(names):
        data.add_field(f"files[{index}]", name.encode() * 10, filename=name)
    return data


async def test_an_edit_leaves_exactly_the_attachments_it_lists(fake_discord: FakeDiscord) -> None:
    """Discord's "Editing Message Attachments": listed old ones stay, listed new files are added,
    anything left out is gone; without the array the old ones stay and new files are added."""
    fake = fake_discord
    url = f"/api/v10/channels/{fake.channel.id}/messages"
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession(base_url=fake.base_url, headers=headers) as http:
        created = {"content": "x", "attachments": [{"id": 0}, {"id": 1}]}
        async with http.post(url, data=_form(created, "a.gif", "b.gif")) as response:
            assert response.status == 200
            message = await response.json()
        a, b = (int(x["id"]) for x in message["attachments"])
        edit = f"{url}/{message['id']}"

        async def patch(payload: dict[str, Any], *names: str) -> list[str]:
            async with http.patch(edit, data=_form(payload, *names)) as response:
                assert response.status == 200, await response.text()
                return [x["filename"] for x in (await response.json())["attachments"]]

        # Keep b, add c; a and the unlisted d are gone.
        assert await patch({"attachments": [{"id": str(b)}, {"id": 0}]}, "c.gif", "d.gif") == [
            "b.gif",
            "c.gif",
        ]
        # No array: what is there stays, the new file is appended.
        assert await patch({"content": "y"}, "e.gif") == ["b.gif", "c.gif", "e.gif"]
        # An empty array removes them all (the message keeps its content).
        assert await patch({"attachments": []}) == []
        assert a not in {x.id for x in fake.messages[int(message["id"])].attachments}


# --- the bot ----------------------------------------------------------------------------------


def attachment_names(version: dict[str, Any]) -> list[str]:
    return [a["filename"] for a in version.get("attachments") or []]


async def test_a_running_job_shows_a_preview_then_the_video(
    fake_discord: FakeDiscord, manager: Any, tmp_path: Path
) -> None:
    """The progress message carries the newest preview beside Cancel, replaced in place (never two
    at once), and the video replaces it at the end."""
    fake = fake_discord
    # Previews come at the progress cadence (0.2 s here); 40 steps of 16 frames outlast the
    # first one by many edits.
    settings = make_settings(tmp_path)
    async with fake.run_bot(make_bot(settings, manager)):
        interaction = await fake.run_slash_command(
            "video", {"prompt": "a paper boat --seed 7 --frames 16 --steps 40", "width": 64}
        )
        message = await wait_for_result(fake, interaction, timeout=180)

    versions = [*message.history, fake.message_payload(message)]
    with_preview = [
        v for v in versions if any(n.startswith("preview") for n in attachment_names(v))
    ]
    assert with_preview, f"no progress edit carried a preview: {message.embeds}"
    for version in with_preview:
        [name] = attachment_names(version)  # one preview at a time, nothing else
        assert name.endswith((".gif", ".webp", ".mp4"))
        assert "step" in (version.get("content") or "")
        ids = [c["custom_id"] for row in version["components"] for c in row["components"]]
        assert ids and all(i.startswith("vb:cancel:") for i in ids)
    # Newer previews replace older ones: the steps they show only go forward.
    steps = [int(v["attachments"][0]["description"].split()[-1]) for v in with_preview]
    assert steps == sorted(steps) and steps[0] >= 1
    # The final message: the video alone, the preview gone.
    assert [a.filename for a in message.attachments] == ["video.mp4"]
    # A preview is a small moving picture Discord plays inline.
    [first_id] = [a["id"] for a in with_preview[0]["attachments"]]
    preview = fake.attachments[int(first_id)]
    assert 0 < len(preview.data) < 1024 * 1024
    if not preview.filename.endswith(".mp4"):
        picture = Image.open(io.BytesIO(preview.data))
        assert getattr(picture, "n_frames", 1) > 1 and max(picture.size) <= 512


async def test_previews_off_means_no_preview(
    fake_discord: FakeDiscord, manager: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    settings = make_settings(tmp_path, discord={"live_previews": False})
    async with fake.run_bot(make_bot(settings, manager)):
        interaction = await fake.run_slash_command(
            "video", {"prompt": "a paper boat --seed 7 --frames 8 --steps 20", "width": 64}
        )
        message = await wait_for_result(fake, interaction, timeout=180)

    progress = [v for v in message.history if "step" in (v.get("content") or "")]
    assert progress, "no progress edit was shown"
    assert all(attachment_names(v) == [] for v in message.history)
    assert [a.filename for a in message.attachments] == ["video.mp4"]
