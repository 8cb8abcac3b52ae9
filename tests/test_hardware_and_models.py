"""Hardware keys and model resolution, including the offline errors users meet."""

import json

import pytest
import torch

from whisper_perf.errors import EnvironmentUnavailable, UsageError
from whisper_perf.hardware import detect_hardware
from whisper_perf.models import resolve_model, short_name


def test_cpu_key_names_arch_isa_and_threads(cpu):
    assert cpu.key == f"{'cpu'}-{cpu.arch}-t{torch.get_num_threads()}"
    assert cpu.arch.split("-")[-1] == torch.backends.cpu.get_cpu_capability().lower()
    assert detect_hardware("cpu") == cpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(EnvironmentUnavailable, match="--device cuda was asked for, but torch sees no CUDA device"):
        detect_hardware("cuda")
    assert detect_hardware("auto").device == "cpu"


def test_short_names():
    assert short_name("openai/whisper-large-v3-turbo") == "large-v3-turbo"
    assert short_name("openai/whisper-medium.en") == "medium.en"
    assert short_name("/models/my-whisper/") == "my-whisper"


def test_unreachable_hub_model_fails_at_once_pointing_to_the_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EnvironmentUnavailable) as error:
        resolve_model("openai/whisper-large-v3-turbo-not-cached")
    message = str(error.value)
    assert "openai/whisper-large-v3-turbo-not-cached" in message and "unreachable" in message
    assert "--model tiny.en" in message


def test_local_folder_that_is_not_whisper(tmp_path):
    with pytest.raises(UsageError, match="has no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UsageError, match="model_type='bert'"):
        resolve_model(str(tmp_path))


def test_embedded_default_resolves_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = resolve_model("tiny.en")
    assert source.embedded and source.name == "tiny.en"
