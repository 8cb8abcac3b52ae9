"""The audio set: utterances with reference texts, as 16 kHz mono float32 arrays.

A local set is a folder with ``metadata.jsonl`` (``file_name`` and ``text`` per line, as in an
audiofolder) loaded through ``datasets``; the audio bytes are decoded with ``soundfile``, never
through torchcodec (its wheels are tied to one torch version, and this suite moves between
torch versions).  A hub dataset (``hf-internal-testing/librispeech_asr_dummy``) is loaded with
its audio column cast to ``Audio(decode=False)`` and decoded the same way.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile

from ..errors import EnvironmentUnavailable, UsageError

SAMPLE_RATE = 16_000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: np.ndarray  # float32, mono, 16 kHz
    text: str

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def members(self) -> tuple[Utterance, ...]:
        """The utterances one call transcribes (see Batch); the scored ones."""
        return (self,)

    @property
    def scored(self) -> tuple[Utterance, ...]:
        return (self,)


@dataclass(frozen=True)
class Batch:
    """The utterances of one batched ``generate()`` call (``--batch N``).  The last batch of a
    set whose size is not a multiple of N is topped up from the set's start, so that every call
    has the same shape (a smaller one would recompile a compiled build while timed, and not fit
    a prebuilt cache): those top-ups are transcribed but not scored a second time."""

    members: tuple[Utterance, ...]
    scored_count: int

    @property
    def id(self) -> str:
        return "+".join(u.id for u in self.members)

    @property
    def seconds(self) -> float:
        return sum(u.seconds for u in self.members)

    @property
    def scored(self) -> tuple[Utterance, ...]:
        return self.members[:self.scored_count]


@dataclass(frozen=True)
class AudioSet:
    name: str
    utterances: tuple[Utterance, ...]
    batch_size: int = 1

    @property
    def seconds(self) -> float:
        return sum(u.seconds for u in self.utterances)

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def units(self) -> tuple[Utterance | Batch, ...]:
        """What one timed call takes: each utterance, or at ``batch_size`` N a Batch of N."""
        if self.batch_size == 1:
            return self.utterances
        n, all_ = self.batch_size, self.utterances
        return tuple(Batch(tuple((all_ * 2)[start:start + n]), min(n, len(all_) - start))
                     for start in range(0, len(all_), n))

    def batched(self, n: int) -> "AudioSet":
        """The same utterances, transcribed ``n`` per call."""
        if n > len(self.utterances):
            raise UsageError(f"--batch {n} is more than the {len(self.utterances)} utterance(s) of {self.name}: "
                             f"give a batch size of at most {len(self.utterances)}, or more utterances")
        return AudioSet(self.name, self.utterances, n)

    def spread(self, n: int | None) -> "AudioSet":
        """``n`` utterances evenly spaced over the set (all voices, speeds and lengths stay
        represented, unlike the first ``n``); protocols record the count."""
        if not n or n >= len(self.utterances):
            return self
        step = len(self.utterances) / n
        return AudioSet(self.name, tuple(self.utterances[int(i * step)] for i in range(n)), self.batch_size)


@contextlib.contextmanager
def changes_recorded():
    """What ``decode`` changes about the input while inside (downmixed, resampled), as lines for
    a person: one per kind of change, with how many files and the first of them."""
    found: dict[str, list[str]] = {}

    class Collect(logging.Handler):
        def emit(self, record):
            origin, change = record.args[0], record.msg.split(": ", 1)[1] % record.args[1:]
            found.setdefault(change, []).append(Path(str(origin)).name)

    handler = Collect(level=logging.WARNING)
    log.addHandler(handler)
    lines: list[str] = []
    try:
        yield lines
    finally:
        log.removeHandler(handler)
        lines += [f"{change}: {len(files)} file(s) ({', '.join(files[:3])}{', ...' if len(files) > 3 else ''})"
                  for change, files in found.items()]


def decode(data: bytes | str | Path, origin: str) -> np.ndarray:
    """Decode audio bytes or a file to 16 kHz mono float32; resample and downmix when needed."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        expected = soundfile.info(source).frames
        if isinstance(source, io.BytesIO):
            source.seek(0)
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, EOFError) as exc:
        raise UsageError(f"{origin}: cannot decode audio ({exc}). Replace or re-generate the file.") from exc
    if 0 < samples.shape[0] < expected:  # a file cut short decodes without error, but not in full
        raise UsageError(f"{origin}: truncated: its header promises {expected} samples, only {samples.shape[0]} "
                         "decode. Replace or re-generate the file.")
    if samples.shape[0] == 0:
        raise UsageError(f"{origin}: the audio is empty. Replace or re-generate the file.")
    if samples.shape[1] > 1:
        log.warning("%s: %d channels, averaged to mono", origin, samples.shape[1])
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        log.warning("%s: %d Hz, resampled to %d Hz", origin, rate, SAMPLE_RATE)
        g = gcd(rate, SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, rate // g)
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_folder(folder: Path) -> AudioSet:
    """A local set: ``folder/metadata.jsonl`` with ``file_name`` and ``text`` (and ``id``)."""
    import datasets

    metadata = _metadata_of(folder)
    try:
        rows = datasets.load_dataset("json", data_files=str(metadata), split="train")
    except Exception as exc:  # datasets raises several types for a bad JSON file
        raise UsageError(f"{metadata}: not a valid JSON-lines metadata file ({exc})") from exc
    missing = {"file_name", "text"} - set(rows.column_names)
    if missing:
        raise UsageError(f"{metadata}: missing column(s) {sorted(missing)}")
    utterances = []
    for index, row in enumerate(rows):
        where = f"{metadata}, line {index + 1}"
        if not (row["text"] or "").strip():
            raise UsageError(f"{where}: no reference text for {row['file_name']}; WER needs one.")
        path = folder / row["file_name"]
        if not path.is_file():
            raise UsageError(f"{where}: audio file {path} does not exist.")
        utterances.append(Utterance(row.get("id") or path.stem, decode(path, str(path)), row["text"].strip()))
    if not utterances:
        raise UsageError(f"{metadata}: the audio set is empty.")
    return AudioSet(folder.name, tuple(utterances))


def load_hub(spec: str) -> AudioSet:
    """``name[:config[:split]]`` from the hub; defaults fit hf-internal-testing/librispeech_asr_dummy."""
    import datasets

    from .models import hub_reachable

    name, config, split = (spec.split(":") + [None, None])[:3]
    if name == "hf-internal-testing/librispeech_asr_dummy":
        config, split = config or "clean", split or "validation"
    try:
        rows = datasets.load_dataset(name, config, split=split or "test")
    except Exception as exc:  # network, missing dataset, bad config: all are "cannot get it here"
        reach = "reachable" if hub_reachable() else "unreachable"
        raise EnvironmentUnavailable(
            f"--dataset {spec}: could not be loaded (the hub is {reach}): {exc}. "
            "Use the committed set (the default) or a local folder with metadata.jsonl.") from exc
    audio_column = next((c for c, f in rows.features.items() if isinstance(f, datasets.Audio)), None)
    text_column = next((c for c in ("text", "sentence", "transcription") if c in rows.column_names), None)
    if audio_column is None or text_column is None:
        raise UsageError(f"--dataset {spec}: needs an Audio column and a text column, has {rows.column_names}")
    rows = rows.cast_column(audio_column, datasets.Audio(decode=False))
    utterances = []
    for index, row in enumerate(rows):
        audio = row[audio_column]
        origin = f"{spec}[{index}] ({audio.get('path')})"
        utterances.append(Utterance(str(row.get("id", index)), decode(audio["bytes"] or audio["path"], origin),
                                    row[text_column].strip()))
    return AudioSet(name.split("/")[-1], tuple(utterances))


SHORT_FORM_SECONDS = 30.0  # Whisper's window: short-form generate() sees no more


def check_short_form(audio: AudioSet, origin: str) -> AudioSet:
    """Refuse utterances that short-form ``generate()`` would silently cut at 30 s."""
    too_long = [f"{u.id} ({len(u.audio) / SAMPLE_RATE:.1f} s)" for u in audio.utterances
                if len(u.audio) > SHORT_FORM_SECONDS * SAMPLE_RATE]
    if too_long:
        raise UsageError(f"{origin}: {', '.join(too_long)} longer than {SHORT_FORM_SECONDS:.0f} s; short-form "
                         "generate() would cut them and their WER would be wrong. Split them, or give them to the "
                         "long-form pipeline variants with --long-dataset.")
    return audio


def _metadata_of(folder: Path) -> Path:
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        raise UsageError(f"{folder}: no metadata.jsonl. An audio set folder needs one line per file: "
                         '{"file_name": "a.flac", "text": "reference text"}')
    return metadata


def check_audio_spec(spec: str | Path, option: str = "--dataset") -> None:
    """At configure time, before any work: a folder holds metadata.jsonl; anything else reads as a
    hub dataset id (owner/name), which only loading it can check."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        _metadata_of(folder)
    elif "/" not in str(spec) or folder.exists() or str(spec).startswith((".", "/")):
        raise UsageError(f"{option} {spec}: no such folder, and not a hub dataset id (owner/name).")


def load_audio_set(spec: str | Path, option: str = "--dataset") -> AudioSet:
    """A folder path, or a hub dataset id."""
    check_audio_spec(spec, option)
    folder = Path(spec).expanduser()
    return load_folder(folder) if folder.is_dir() else load_hub(str(spec))
