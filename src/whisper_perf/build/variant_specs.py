"""The variants the suite knows, as data: names, compile settings and what each is compared to
(the table in ``variants``, which builds them).  Torch-free, so that reading a results file (judge,
merge, history, the report) needs no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class VariantSpec:
    name: str
    compile_mode: str | None = None  # None: eager
    static_cache: bool = False  # generate() makes a static cache (cache_implementation="static")
    prebuilt_cache: bool = False  # the suite builds the static cache once and passes it (static_cache.py)
    math_sdpa: bool = False
    long_form: bool = False  # pipeline over the long clips instead of generate() per utterance
    reference: str | None = None  # the eager variant this one's speedup is measured against
    slowed_of: str | None = None  # sensitivity twin: this compiled variant, made slower on purpose

    @property
    def compiled(self) -> bool:
        return self.compile_mode is not None

    @property
    def baseline_name(self) -> str:
        """The variant whose baseline this one is judged against."""
        return self.slowed_of or self.name

    @property
    def compiles_itself(self) -> bool:
        """Compiled, and not a sensitivity twin (which reuses its original's compiled forward)."""
        return self.compiled and not self.slowed_of

    def as_dict(self) -> dict:
        return asdict(self)


VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in (
        VariantSpec("eager"),
        VariantSpec("compiled", compile_mode="default", reference="eager"),
        VariantSpec("compiled-static", compile_mode="reduce-overhead", static_cache=True, math_sdpa=True,
                    reference="eager"),
        VariantSpec("compiled-static-prebuilt", compile_mode="reduce-overhead", prebuilt_cache=True,
                    math_sdpa=True, reference="eager"),
        VariantSpec("pipeline", long_form=True),
        VariantSpec("pipeline-compiled", compile_mode="reduce-overhead", static_cache=True, math_sdpa=True,
                    long_form=True, reference="pipeline"),
        VariantSpec("pipeline-compiled-prebuilt", compile_mode="reduce-overhead", prebuilt_cache=True,
                    math_sdpa=True, long_form=True, reference="pipeline"),
    )
}
COMPILED_VARIANTS = [name for name, spec in VARIANTS.items() if spec.compiled]
SLOWED = "+slowed"


def slowed_twin(name: str) -> str:
    return name + SLOWED


def spec_for(name: str) -> VariantSpec:
    """The spec of a variant name, including the sensitivity twins ``<compiled variant>+slowed``."""
    if name.endswith(SLOWED) and name.removesuffix(SLOWED) in COMPILED_VARIANTS:
        return replace(VARIANTS[name.removesuffix(SLOWED)], name=name, slowed_of=name.removesuffix(SLOWED))
    return VARIANTS[name]


def reference_spec(spec: VariantSpec) -> VariantSpec | None:
    """The eager build that ``spec`` is compared with: same long/short form, same attention."""
    if spec.reference is None:
        return None
    base = VARIANTS[spec.reference]
    if spec.math_sdpa == base.math_sdpa:
        return base
    return replace(base, name=f"{base.name}+math", math_sdpa=spec.math_sdpa)
