"""GPU faults and hostile input: out-of-memory retry with the memory savers, the job time limit,
control characters and blocked words."""

from __future__ import annotations

import time

import pytest
import torch

from bot.core import GenerationParams, InvalidParameterError, JobControl
from bot.core.engine import GenerationEngine
from bot.service import generate_with_oom_retry


def raise_oom_times(pipe, times: int):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def hook(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] <= times:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    return pipe.unet.register_forward_pre_hook(hook), calls


def test_out_of_memory_is_retried_once_with_the_memory_savers(fresh_manager, small_params) -> None:
    engine = GenerationEngine(fresh_manager)
    loaded = fresh_manager.load_model("tiny_t2v")
    handle, _ = raise_oom_times(loaded.pipeline, 1)
    seen_switches = []
    seen_options = []
    original = engine.generate_video

    def spy(params, control):  # type: ignore[no-untyped-def]
        seen_switches.append(fresh_manager.get_loaded("tiny_t2v").switches.cpu_offload)
        seen_options.append(fresh_manager.options.cpu_offload)
        return original(params, control)

    engine.generate_video = spy  # type: ignore[method-assign]
    try:
        result = generate_with_oom_retry(engine, small_params(), JobControl())
    finally:
        handle.remove()
    assert result.ok and result.metadata["retried_with_memory_savers"] is True
    assert seen_switches == [False, True]  # the retry ran with the savers on
    # ... on that model only: the options every other job reads never changed, even mid-retry
    assert seen_options == [False, False] and fresh_manager.options.cpu_offload is False
    assert fresh_manager.get_loaded("tiny_t2v").switches.cpu_offload is False


def test_out_of_memory_twice_fails_with_advice(fresh_manager, small_params) -> None:
    engine = GenerationEngine(fresh_manager)
    loaded = fresh_manager.load_model("tiny_t2v")
    handle, calls = raise_oom_times(loaded.pipeline, 10)
    try:
        result = generate_with_oom_retry(engine, small_params(), JobControl())
    finally:
        handle.remove()
    assert calls["n"] == 2 and not result.ok
    assert "Out of GPU memory" in result.error and "CPU offload" in result.error
    assert engine.generate_video(small_params()).ok  # the engine is fine afterwards


def test_a_job_past_its_time_limit_is_stopped(engine, small_params) -> None:
    control = JobControl(time_limit_s=0.05)
    loaded = engine.manager.load_model("tiny_t2v")
    calls: list[None] = []
    handle = loaded.pipeline.unet.register_forward_pre_hook(
        lambda *a: calls.append(time.sleep(0.03))
    )
    try:
        result = engine.generate_video(small_params(num_inference_steps=30), control)
    finally:
        handle.remove()
    assert not result.ok and not result.cancelled
    assert "longer than its limit of 0.05 s" in result.error
    assert len(calls) < 30  # stopped at a step boundary, long before the end


@pytest.mark.parametrize(
    "text", ["a\x00cat", "\x1b[2J clear screen", "left\u202eright", "bell\x07"]
)
def test_control_characters_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameterError, match="contains a control character"):
        GenerationParams(prompt=text)
    with pytest.raises(
        InvalidParameterError, match="negative_prompt: contains a control character"
    ):
        GenerationParams(prompt="ok", negative_prompt=text)
    assert GenerationParams(prompt="two\nlines\tand tabs").prompt == "two\nlines\tand tabs"
