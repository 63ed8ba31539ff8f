"""Live previews in a running job's message, end to end: the real discord.py bot on the tiny models
against the fake Discord; and the fake's edit semantics they rely on (an edit's ``attachments``
array leaves exactly what it lists, as Discord does)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from fake_discord import FakeDiscord

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
