"""A small local Hugging Face hub for tests: the real ``huggingface_hub`` download code reaches it
through ``HF_ENDPOINT`` and finds, under each registry model's real repo id, a tiny replica laid out
like that repo's real file tree (see ``manifest.json``)."""
