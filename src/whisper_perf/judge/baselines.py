"""Expected results per hardware key, kept as reviewed data in ``baselines/<key>.json``.

One file per hardware key, JSON with sorted keys and one entry per model x variant x protocol,
so that a re-record reads as a small git diff.  A result is only compared with an entry of the
same hardware key and the same protocol.  Files are validated on load (an error names the file,
the entry and the field) and written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from ..errors import UsageError

SCHEMA_VERSION = 1


class BaselineError(UsageError):
    """A baseline file that cannot be trusted: the message names file, entry and field."""


@dataclass(frozen=True)
class Tolerances:
    """Relative for times and speedups, absolute (0.005 = 0.5 WER points) for WER."""

    speedup: float = 0.10
    compiled_time: float = 0.15
    wer: float = 0.005
    wer_vs_eager: float = 0.005
    peak_memory: float = 0.10
    compile_seconds: float = 0.50  # first compiled call; compile times vary more than run times
    # device time and device speedup (CUDA): kernel durations of a fixed workload, far steadier than
    # the host's wall time; PyTorch's own dashboard gates at 5%.  A GPU's calibration sets its own.
    device_time: float = 0.05

    def validate(self, where: str) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise BaselineError(f"{where}: tolerance {f.name}={value!r} must be a number in [0, 1)")


@dataclass(frozen=True)
class Anomaly:
    """An expected oddity, e.g. compiled slower than eager, limited to a version range."""

    reason: str
    reference: str = ""
    torch: str = ""  # a version specifier such as ">=2.6,<2.8"; empty: any version
    transformers: str = ""

    def applies(self, torch_version: str, transformers_version: str) -> bool:
        for spec, version in ((self.torch, torch_version), (self.transformers, transformers_version)):
            if spec and Version(Version(version).base_version) not in SpecifierSet(spec):
                return False
        return True


@dataclass(frozen=True)
class Batched:
    """The batch size of this hardware's batched measurement, which the full profile runs beside
    batch 1 (``whisper-perf batch-sweep --write`` chooses it and says why), and its own tolerances
    where a calibration at that batch size wrote them: a GPU that waits on the host at batch 1 is
    busy at batch N, so the two spread differently and one tolerance would misjudge one of them."""

    batch_size: int
    why: str = ""
    tolerances: Tolerances | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Entry:
    model: str
    variant: str
    protocol: dict
    seconds: float  # summed generate() seconds of the variant over the audio set (mean pass)
    wer: float | None  # None: not known (published numbers without WER)
    reference_seconds: float | None = None  # its eager reference, for compiled variants
    reference_wer: float | None = None
    speedup: float | None = None
    speedup_interval: list[float] | None = None
    anomaly: Anomaly | None = None
    tolerances: Tolerances | None = None  # overrides the file's
    provenance: dict = field(default_factory=dict)
    # compile health, peak memory and compile latency when recorded (see DIAGNOSTIC_FIELDS)
    diagnostics: dict = field(default_factory=dict)
    # machine_speed.probe_ms() while it was recorded: tells whether the machine's speed has moved since
    machine_probe_ms: float | None = None

    @property
    def id(self) -> str:
        return f"{self.model}/{self.variant}"

    def as_dict(self) -> dict:
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None and v != {}}


# What a baseline entry may hold under "diagnostics", and the type of each.
DIAGNOSTIC_FIELDS = {"graph_breaks": int, "graphs": int, "cudagraph_skip_reasons": list,
                     "peak_memory_bytes": int, "reference_peak_memory_bytes": int,
                     "first_call_seconds": (int, float), "cold_compile_seconds": (int, float),
                     "warm_compile_seconds": (int, float), "per_token_ms": (int, float),
                     "first_token_ms": (int, float), "encoder_ms": (int, float),
                     "fingerprint": dict, "device_busy_ms": (int, float), "device_speedup": (int, float),
                     "kernel_ms": (int, float)}


def _diagnostics(data: dict | None, where: str) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BaselineError(f"{where}: field 'diagnostics' must be an object")
    for key, value in data.items():
        kinds = DIAGNOSTIC_FIELDS.get(key)
        if kinds is None:
            raise BaselineError(f"{where}, diagnostics: unknown field {key!r}; known: {sorted(DIAGNOSTIC_FIELDS)}")
        if not isinstance(value, kinds) or isinstance(value, bool) or (
                isinstance(value, (int, float)) and value < 0):
            raise BaselineError(f"{where}, diagnostics: field {key!r} must be a non-negative "
                                f"{getattr(kinds, '__name__', 'number')}, not {value!r}")
    _check_fingerprint(data.get("fingerprint"), where)
    return dict(data)


# What a fingerprint (kernel_profile.fingerprint_of) may hold, and the type of each.
FINGERPRINT_FIELDS = {"aten_ops_per_step": (int, float), "kernels_per_step": (int, float),
                      "cuda_graph_launches_per_call": int, "memcpys_per_call": int, "generated_kernels": list}


def _check_fingerprint(found: dict | None, where: str) -> None:
    for key, value in (found or {}).items():
        kinds = FINGERPRINT_FIELDS.get(key)
        if kinds is None or not isinstance(value, kinds) or isinstance(value, bool) or (
                key == "generated_kernels" and not all(isinstance(name, str) for name in value)):
            raise BaselineError(f"{where}, diagnostics.fingerprint: field {key!r} must be one of "
                                f"{sorted(FINGERPRINT_FIELDS)} with a value of its type (a list of kernel names for "
                                f"generated_kernels), not {value!r}")


def protocol_of(setup: dict, audio_set: str, utterances: int) -> dict:
    """What must be equal for two timings to be comparable."""
    return {"dataset": audio_set, "utterances": utterances, "max_new_tokens": setup["max_new_tokens"],
            "fixed_work": setup["fixed_work"], "dtype": setup["dtype"], "batch_size": setup["batch_size"]}


def missing_text(model: str, variant: str, hardware_key: str, protocol: dict, folder: Path, record_hint: str) -> str:
    """What is missing when a model x variant x protocol has no baseline entry, and how to record it."""
    return (f"no baseline for {model}/{variant} on hardware {hardware_key} with protocol "
            f"({describe_protocol(protocol)}) in {path_for(folder, hardware_key)}. Record it with: {record_hint}")


def anomaly_applying(entry: Entry | None, torch_version: str, transformers_version: str) -> Anomaly | None:
    """The entry's declared anomaly, where it applies to these versions (then it replaces the
    speedup checks: see verdicts.speedup_verdicts)."""
    if entry and entry.anomaly and entry.anomaly.applies(torch_version, transformers_version):
        return entry.anomaly
    return None


def describe_protocol(protocol: dict) -> str:
    return ", ".join(f"{k}={protocol[k]}" for k in sorted(protocol))


@dataclass
class BaselineFile:
    hardware_key: str
    device_name: str = ""
    tolerances: Tolerances = field(default_factory=Tolerances)
    entries: list[Entry] = field(default_factory=list)
    notes: str = ""
    batched: Batched | None = None

    def find(self, model: str, variant: str, protocol: dict) -> Entry | None:
        return next((e for e in self.entries
                     if (e.model, e.variant, e.protocol) == (model, variant, protocol)), None)

    def tolerances_for(self, entry: Entry) -> Tolerances:
        return entry.tolerances or self.tolerances_of(entry.protocol)

    def tolerances_of(self, protocol: dict) -> Tolerances:
        """The file's tolerances for entries of ``protocol``: the batched measurement's own at its
        batch size, where a calibration wrote them; the file's otherwise."""
        batched = self.batched
        if batched and batched.tolerances and protocol.get("batch_size", 1) == batched.batch_size:
            return batched.tolerances
        return self.tolerances

    def upsert(self, entry: Entry) -> Entry | None:
        """Insert or replace the entry of the same model, variant and protocol; return the old one.
        A replaced entry keeps its reviewed anomaly and tolerances."""
        old = self.find(entry.model, entry.variant, entry.protocol)
        if old is not None:
            entry.anomaly = entry.anomaly or old.anomaly
            entry.tolerances = entry.tolerances or old.tolerances
            self.entries[self.entries.index(old)] = entry
        else:
            self.entries.append(entry)
        self.entries.sort(key=lambda e: (e.model, e.variant, json.dumps(e.protocol, sort_keys=True)))
        return old

    def to_json(self) -> str:
        data = {"schema_version": SCHEMA_VERSION, "hardware_key": self.hardware_key,
                "device_name": self.device_name, "notes": self.notes,
                "tolerances": asdict(self.tolerances), "entries": [e.as_dict() for e in self.entries],
                **({"batched": self.batched.as_dict()} if self.batched else {})}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _require(mapping: dict, key: str, kinds, where: str, optional: bool = False):
    if key not in mapping or mapping[key] is None:
        if optional:
            return None
        raise BaselineError(f"{where}: missing field '{key}'")
    value = mapping[key]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise BaselineError(f"{where}: field '{key}' has {type(value).__name__} {value!r}, expected {expected}")
    return value


def _positive(mapping: dict, key: str, where: str, optional: bool = False):
    value = _require(mapping, key, (int, float), where, optional)
    if value is not None and not value > 0:
        raise BaselineError(f"{where}: field '{key}' must be positive, not {value}")
    return value


def _tolerances(data: dict | None, where: str, base: Tolerances | None = None) -> Tolerances | None:
    """The tolerances ``data`` names, the others ``base``'s (the defaults without one)."""
    if data is None:
        return None
    known = {f.name for f in fields(Tolerances)}
    unknown = set(data) - known
    if unknown:
        raise BaselineError(f"{where}: unknown tolerance(s) {sorted(unknown)}; known: {sorted(known)}")
    tolerances = Tolerances(**{**(asdict(base) if base else {}), **data})
    tolerances.validate(where)
    return tolerances


def _batched(data: dict | None, where: str, file_tolerances: Tolerances) -> Batched | None:
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) - {"batch_size", "why", "tolerances"}:
        raise BaselineError(f"{where}: field 'batched' must be an object with 'batch_size', 'why' and optional "
                            "'tolerances' (whisper-perf batch-sweep --write writes it)")
    size, why = _require(data, "batch_size", int, f"{where}, batched"), data.get("why", "")
    if size < 2 or not isinstance(why, str):
        raise BaselineError(f"{where}, batched: 'batch_size' must be a whole number of at least 2 (batch 1 is always "
                            f"measured) and 'why' a text, not {size!r} and {why!r}")
    # a tolerance the section leaves out is the file's
    return Batched(size, why, _tolerances(data.get("tolerances"), f"{where}, batched, tolerances", file_tolerances))


def _entry(data: dict, where: str) -> Entry:
    if not isinstance(data, dict):
        raise BaselineError(f"{where}: must be an object")
    anomaly = _require(data, "anomaly", dict, where, optional=True)
    if anomaly is not None:
        _require(anomaly, "reason", str, f"{where}, anomaly")
        try:
            anomaly = Anomaly(**anomaly)
            SpecifierSet(anomaly.torch), SpecifierSet(anomaly.transformers)
        except (TypeError, InvalidSpecifier) as exc:
            raise BaselineError(f"{where}, anomaly: {exc}") from exc
    wer = _require(data, "wer", (int, float), where, optional=True)
    if wer is not None and wer < 0:
        raise BaselineError(f"{where}: field 'wer' must not be negative, not {wer}")
    interval = _require(data, "speedup_interval", list, where, optional=True)
    return Entry(
        model=_require(data, "model", str, where), variant=_require(data, "variant", str, where),
        protocol=_require(data, "protocol", dict, where), seconds=_positive(data, "seconds", where), wer=wer,
        reference_seconds=_positive(data, "reference_seconds", where, optional=True),
        reference_wer=_require(data, "reference_wer", (int, float), where, optional=True),
        speedup=_positive(data, "speedup", where, optional=True), speedup_interval=interval,
        anomaly=anomaly, tolerances=_tolerances(data.get("tolerances"), f"{where}, tolerances"),
        provenance=data.get("provenance") or {}, diagnostics=_diagnostics(data.get("diagnostics"), where),
        machine_probe_ms=_positive(data, "machine_probe_ms", where, optional=True))


def load(path: Path, hardware_key: str | None = None) -> BaselineFile:
    """Read and validate ``path``; with ``hardware_key``, it must be that key's file."""
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
                            "Restore it with git, or re-record it.") from exc
    if not isinstance(data, dict):
        raise BaselineError(f"{where}: must hold a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BaselineError(f"{where}: schema_version {version!r}, this suite reads {SCHEMA_VERSION}")
    key = _require(data, "hardware_key", str, where)
    if hardware_key is not None and key != hardware_key:
        raise BaselineError(f"{where}: is for hardware key {key!r}, not {hardware_key!r}")
    if path.stem != key:
        raise BaselineError(f"{where}: file name must be the hardware key ({key}.json)")
    entries = _require(data, "entries", list, where)
    tolerances = _tolerances(data.get("tolerances"), f"{where}, tolerances") or Tolerances()
    baseline = BaselineFile(
        hardware_key=key, device_name=data.get("device_name", ""), notes=data.get("notes", ""),
        tolerances=tolerances, batched=_batched(data.get("batched"), where, tolerances),
        entries=[_entry(e, f"{where}, entry {i} ({e.get('model')}/{e.get('variant')})" if isinstance(e, dict)
                        else f"{where}, entry {i}") for i, e in enumerate(entries)])
    seen = set()
    for i, e in enumerate(baseline.entries):
        ident = (e.model, e.variant, json.dumps(e.protocol, sort_keys=True))
        if ident in seen:
            raise BaselineError(f"{where}, entry {i}: a second entry for {e.id} with the same protocol")
        seen.add(ident)
    return baseline


def lookup(baseline: BaselineFile | None, model: str, variant: str, protocol: dict) -> tuple[Entry | None, Tolerances]:
    """(this model x variant x protocol's entry or None, the tolerances it is judged with): the
    one lookup every verdict, chart and report uses."""
    entry = baseline.find(model, variant, protocol) if baseline else None
    if entry is not None:
        return entry, baseline.tolerances_for(entry)
    return None, baseline.tolerances_of(protocol) if baseline else Tolerances()


def path_for(folder: Path, hardware_key: str) -> Path:
    return folder / f"{hardware_key}.json"


def load_for(folder: Path, hardware_key: str) -> BaselineFile | None:
    path = path_for(folder, hardware_key)
    return load(path, hardware_key) if path.exists() else None


def tolerances_for(folder: Path, hardware_key: str) -> Tolerances:
    """The tolerances of the key's baseline file in ``folder``; the defaults when it has none or
    cannot be read (the commands that compare runs need a tolerance either way)."""
    try:
        found = load_for(folder, hardware_key)
    except BaselineError:
        found = None
    return found.tolerances if found else Tolerances()
