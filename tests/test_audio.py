"""The committed audio set, and what happens with bad audio input."""

import json

import numpy as np
import pytest
import soundfile

from whisper_perf.errors import UsageError
from whisper_perf.inputs.audio import SAMPLE_RATE, changes_recorded, load_audio_set


def test_committed_short_set_is_as_documented(short_set):
    assert len(short_set) >= 48
    for u in short_set.utterances:
        assert 2.0 <= u.seconds <= 25.0, u.id
        assert u.audio.dtype == np.float32 and u.audio.ndim == 1
        assert u.text and u.text == u.text.strip()
    assert len({u.id for u in short_set.utterances}) == len(short_set)


def test_committed_long_clip_is_at_least_a_minute(long_set):
    assert len(long_set) >= 1
    assert max(u.seconds for u in long_set.utterances) >= 60


def test_committed_files_are_16k_mono_flac(short_set):
    from fixtures.speech import AUDIO

    for path in sorted(AUDIO.glob("*/*.flac")):
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.format) == (SAMPLE_RATE, 1, "FLAC"), path


def _write_set(folder, rows, audio=None, rate=SAMPLE_RATE):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.jsonl", "w") as meta:
        for row in rows:
            meta.write(json.dumps(row) + "\n")
            if audio is not None:
                soundfile.write(folder / row["file_name"], audio, rate)
    return folder


def test_other_rate_and_channels_are_resampled_and_downmixed(tmp_path):
    t = np.arange(44_100 * 2) / 44_100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    folder = _write_set(tmp_path, [{"file_name": "a.flac", "text": "hello"}], stereo, 44_100)
    with changes_recorded() as changes:
        (utterance,) = load_audio_set(folder).utterances
    assert abs(utterance.seconds - 2.0) < 0.01
    assert utterance.audio.ndim == 1 and abs(utterance.audio.max() - 0.5) < 0.02
    assert changes == ["2 channels, averaged to mono: 1 file(s) (a.flac)",
                       "44100 Hz, resampled to 16000 Hz: 1 file(s) (a.flac)"]  # said, for the run's output and report


def test_corrupt_file_names_the_file(tmp_path):
    folder = _write_set(tmp_path, [{"file_name": "bad.flac", "text": "hello"}])
    (folder / "bad.flac").write_bytes(b"fLaC" + b"\0" * 100)
    with pytest.raises(UsageError, match=r"bad\.flac: cannot decode audio"):
        load_audio_set(folder)


def test_truncated_file_and_empty_set_are_usage_errors(tmp_path):
    folder = _write_set(tmp_path, [{"file_name": "cut.flac", "text": "hello"}], np.zeros(16_000, np.float32))
    data = (folder / "cut.flac").read_bytes()
    (folder / "cut.flac").write_bytes(data[: len(data) // 3])  # a download cut short
    with pytest.raises(UsageError, match=r"cut\.flac: "):
        load_audio_set(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metadata.jsonl").write_text("")
    with pytest.raises(UsageError, match="metadata.jsonl"):
        load_audio_set(empty)


def test_utterance_longer_than_whispers_window_is_refused_for_short_form(tmp_path):
    from whisper_perf.inputs.audio import check_short_form

    folder = _write_set(tmp_path, [{"file_name": "long.flac", "text": "hello", "id": "long"}],
                        np.zeros(16_000 * 31, dtype=np.float32))
    audio = load_audio_set(folder)
    with pytest.raises(UsageError, match=r"--dataset x: long \(31\.0 s\) longer than 30 s.*--long-dataset"):
        check_short_form(audio, "--dataset x")
    shorter = _write_set(tmp_path / "ok", [{"file_name": "ok.flac", "text": "hello"}],
                         np.zeros(16_000 * 29, dtype=np.float32))
    assert check_short_form(load_audio_set(shorter), "ok").utterances[0].seconds == pytest.approx(29.0)


def test_missing_reference_text_names_the_line(tmp_path):
    folder = _write_set(tmp_path, [{"file_name": "a.flac", "text": "hi"}, {"file_name": "b.flac", "text": " "}],
                        np.zeros(16_000, dtype=np.float32))
    with pytest.raises(UsageError, match=r"metadata.jsonl, line 2: no reference text for b\.flac"):
        load_audio_set(folder)


def test_missing_metadata_and_unknown_path_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no metadata.jsonl"):
        load_audio_set(tmp_path)
    with pytest.raises(UsageError, match="no such folder"):
        load_audio_set(tmp_path / "nowhere")


def test_hub_dataset_without_hub_access_is_an_environment_error(monkeypatch):
    from whisper_perf.errors import EnvironmentUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EnvironmentUnavailable, match=r"librispeech_asr_dummy: could not be loaded \(the hub is "
                                                     r"unreachable\).*Use the committed set"):
        load_audio_set("hf-internal-testing/librispeech_asr_dummy")
