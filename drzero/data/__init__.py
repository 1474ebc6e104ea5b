"""Question sets: the five bundled benchmarks, the toy task, local files and the HF hub.

Every loader returns a list of ``{"problem": str, "answer": str | list[str]}`` rows, the
shape training, evaluation and probing all consume.

Sources understood by ``load_questions``:
- ``toy`` / ``toy:train`` / ``toy:test``: the bundled synthetic task's questions (made by ``drzero.toy``);
  ``toy-v2:train`` / ``toy-v2:test``: toy world v2's questions (the ``toy-v2`` model's task);
- ``aime24``, ``amc``, ``math500``, ``minerva``, ``olympiadbench``: bundled benchmarks;
- a local ``.jsonl``/``.json``/``.parquet``/``.csv`` file, or a folder written by
  ``datasets.save_to_disk``;
- a Hugging Face hub dataset name, ``owner/name`` (needs the network, or the local cache
  under ``HF_HUB_OFFLINE=1``); ``dataset_config`` names its configuration (``gsm8k``
  needs ``main``).
Anything else is refused at once, listing the bundled names (``check_source``).
``dataset_filter`` keeps the rows satisfying a condition on their columns, before the
question/answer columns are picked (``level in ['Level 3', 'Level 4', 'Level 5']``; grammar
in ``drzero.data.filter``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from drzero.data.filter import apply_filter
from drzero.errors import DrZeroError

DATA_DIR = Path(__file__).parent
BENCHMARK_DIR = DATA_DIR / "benchmarks"
TOY_DIR = DATA_DIR / "toy"
TOY_SETS = {"toy": TOY_DIR, "toy-v2": DATA_DIR / "toy-v2"}  # name -> folder of train/test.jsonl
BENCHMARKS = {
    "aime24": "aime24.jsonl",
    "amc": "amc.jsonl",
    "math500": "math500.jsonl",
    "minerva": "minerva.jsonl",
    "olympiadbench": "olympiadbench.jsonl",
}
BENCHMARK_ALIASES = {"aime": "aime24", "math": "math500", "olympiad": "olympiadbench", "olympiad_bench": "olympiadbench"}
QUESTION_COLUMNS = ("problem", "question", "input", "prompt", "query")
ANSWER_COLUMNS = ("answer", "gt_answer", "ground_truth_answer", "target", "final_answer", "solution")


BUNDLED = (*BENCHMARKS, "toy:train", "toy:test", "toy-v2:train", "toy-v2:test")


def _toy_source(source: str) -> tuple[str, str] | None:
    """``("toy-v2", "test")`` for ``toy-v2:test``; ``None`` if ``source`` is not a toy set."""
    name, _, split = source.partition(":")
    return (name, split) if name in TOY_SETS else None


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE) is set: no network at all."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_source(source: str, flag: str = "--dataset") -> None:
    """Refuse a question source that is none of: a bundled name, an existing path, a hub
    name ``owner/name``. Touches no network, so a typo is answered at once."""
    if _toy_source(source):
        name, split = _toy_source(source)
        if (split or "train") not in ("train", "test"):
            raise DrZeroError(f"{flag}: unknown toy split {split!r}; choose {name}:train or {name}:test")
        return
    if source.lower() in BENCHMARKS or source.lower() in BENCHMARK_ALIASES or Path(source).expanduser().exists():
        return
    if source.startswith((".", "/", "~")) or source.endswith((".jsonl", ".json", ".csv", ".parquet")):
        raise DrZeroError(f"{flag}: dataset path {source!r} does not exist")
    owner, _, name = source.partition("/")
    if not (owner.strip() and name.strip()) or name.count("/"):
        raise DrZeroError(f"{flag}: unknown dataset {source!r}; bundled: {', '.join(BUNDLED)}; "
                          "or give a local file/folder, or a hub dataset as owner/name")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DrZeroError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return rows


def load_toy_split(split: str, name: str = "toy") -> list[dict]:
    """The toy task's shipped questions (``train``: 6,000, ``test``: 500; ``drzero.toy`` makes
    them); ``name="toy-v2"`` for toy world v2's."""
    path = TOY_SETS[name] / f"{split}.jsonl"
    if split not in ("train", "test") or not path.exists():
        raise DrZeroError(f"unknown toy split {split!r}; choose train or test")
    return read_jsonl(path)


def load_benchmark(name: str) -> list[dict]:
    """One bundled benchmark by name (``aime24``, ``amc``, ``math500``, ``minerva``, ``olympiadbench``)."""
    key = BENCHMARK_ALIASES.get(name.lower(), name.lower())
    if key not in BENCHMARKS:
        raise DrZeroError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return read_jsonl(BENCHMARK_DIR / BENCHMARKS[key])


def _pick(columns, wanted: str | None, candidates, what: str, source: str) -> str:
    if wanted:
        if wanted not in columns:
            raise DrZeroError(f"{source}: no {what} column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    raise DrZeroError(
        f"{source}: no {what} column found (columns: {', '.join(columns)}); pass --{what}-column"
    )


def _rows_from_table(rows: list[dict], source: str, question_column, answer_column) -> list[dict]:
    if not rows:
        raise DrZeroError(f"{source}: the dataset is empty")
    columns = list(rows[0].keys())
    qcol = _pick(columns, question_column, QUESTION_COLUMNS, "question", source)
    acol = _pick(columns, answer_column, ANSWER_COLUMNS, "answer", source)
    out = []
    for i, row in enumerate(rows):
        q, a = row.get(qcol), row.get(acol)
        if isinstance(a, float) and a.is_integer():
            a = str(int(a))
        if isinstance(a, (int, float)):
            a = str(a)
        empty = a is None or (isinstance(a, str) and not a.strip()) or (isinstance(a, list) and not a)
        if not isinstance(q, str) or not q.strip():
            raise DrZeroError(f"{source}: row {i} has an empty question in column {qcol!r}")
        if empty:
            raise DrZeroError(f"{source}: row {i} has an empty answer in column {acol!r}")
        out.append({"problem": q, "answer": [str(x).strip() for x in a] if isinstance(a, list) else str(a).strip()})
    return out


def load_questions(
    source: str,
    *,
    split: str | None = None,
    question_column: str | None = None,
    answer_column: str | None = None,
    limit: int | None = None,
    dataset_config: str | None = None,
    dataset_filter: str | None = None,
) -> list[dict]:
    """Rows ``{"problem", "answer"}`` from any source above; see the module docstring."""
    rows = _load(source, split, question_column, answer_column, dataset_config, dataset_filter)
    if limit is not None and limit < 1:
        raise DrZeroError(f"limit must be >= 1 (or None for all), got {limit}")
    return rows[:limit] if limit is not None else rows


def _load(source, split, question_column, answer_column, dataset_config=None, dataset_filter=None):
    keep = (lambda rows: apply_filter(rows, dataset_filter, source)) if dataset_filter else (lambda rows: rows)
    if _toy_source(source):
        name, toy_split = _toy_source(source)
        return keep(load_toy_split(toy_split or split or "train", name))
    if source.lower() in BENCHMARKS or source.lower() in BENCHMARK_ALIASES:
        return keep(load_benchmark(source))
    path = Path(source).expanduser()
    if path.exists():
        if dataset_config:
            raise DrZeroError(f"{source}: --dataset-config applies to hub datasets, not to a local path")
        return _rows_from_table(keep(_read_local(path, split)), str(path), question_column, answer_column)
    check_source(source)  # a typo is answered here, before any hub call
    return _rows_from_table(keep(_read_hub(source, split, dataset_config)), source, question_column, answer_column)


def _read_local(path: Path, split: str | None) -> list[dict]:
    import datasets

    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                name = split or next(iter(ds))
                if name not in ds:
                    raise DrZeroError(f"{path}: no split {name!r} (splits: {', '.join(ds)})")
                ds = ds[name]
            return ds.to_list()
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            return read_jsonl(path)
        if suffix == ".json":
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                data = data.get(split or "train", data.get("data"))
            if not isinstance(data, list):
                raise DrZeroError(f"{path}: expected a JSON list of objects")
            return data
        if suffix in (".parquet", ".csv"):
            return datasets.load_dataset(suffix[1:], data_files=str(path), split="train").to_list()
    except DrZeroError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a malformed file
        raise DrZeroError(f"{path}: cannot read dataset ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    raise DrZeroError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl, .json, .parquet, .csv or a saved dataset folder)")


def _check_on_hub(name: str) -> None:
    """One quick request before ``datasets`` (which retries for half a minute): a name the
    hub does not know, or a hub that cannot be reached, is answered at once."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(name, timeout=15)
    except RepositoryNotFoundError:
        raise DrZeroError(f"unknown dataset {name!r}: not on the Hugging Face hub (or private); "
                          f"bundled: {', '.join(BUNDLED)}") from None
    except HfHubHTTPError:
        return  # gated, rate-limited, ...: the load below says what it is
    except Exception as e:  # noqa: BLE001 - the network: DNS, refused, timed out, proxy
        raise DrZeroError(f"dataset {name!r}: cannot reach the Hugging Face hub ({type(e).__name__}); "
                          f"set HF_HUB_OFFLINE=1 to use the local cache; bundled: {', '.join(BUNDLED)}") from None


def _read_hub(name: str, split: str | None, dataset_config: str | None = None) -> list[dict]:
    import datasets

    offline = hub_offline()
    if not offline:
        _check_on_hub(name)
    saved = datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE
    if offline:  # datasets reads the variables once, when imported: the user may have set them since
        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    try:
        return datasets.load_dataset(name, dataset_config, split=split or "train").to_list()
    except Exception as e:  # noqa: BLE001
        if offline:
            raise DrZeroError(f"dataset {name!r}: offline mode (HF_HUB_OFFLINE=1) and it is not in the local cache; "
                              f"bundled: {', '.join(BUNDLED)}") from None
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DrZeroError(
            f"cannot load dataset {name!r}: not a bundled name ({', '.join(BUNDLED)}), not a local path, "
            f"and the hub load failed ({msg[:200]})"
        ) from None
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = saved
