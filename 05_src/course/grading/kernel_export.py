"""Source of the last cell the grader runs in the learner's kernel: save the answers as data.

The runner sends this file's text to the kernel (which cannot import ``course``), then
calls ``_grader_export(SPEC, globals())``. It writes, in ``SPEC["answers"]``, one file per
answer (DataFrames and Series as parquet, everything else as JSON; a fitted search also as
a cloudpickle for the contained scorer) and ``manifest.json`` describing them; the outputs
of the learner's functions on the grader's inputs (``SPEC["inputs"]``) likewise. Nothing
here judges anything: the judge, another process, reads these files as untrusted data.
"""


def _grader_export(spec, namespace):  # noqa: C901 - one self-contained cell
    """Save the names ``spec`` asks for from ``namespace`` into ``spec["answers"]``."""
    import json
    import signal
    import traceback
    from pathlib import Path

    import numpy as np
    import pandas as pd

    out = Path(spec["answers"])
    out.mkdir(parents=True, exist_ok=True)

    def kind(value):
        if value is None:
            return "none"
        if isinstance(value, bool | np.bool_):
            return "bool"
        if isinstance(value, int | np.integer):
            return "int"
        if isinstance(value, float | np.floating):
            return "float"
        if isinstance(value, str):
            return "str"
        if isinstance(value, pd.DataFrame):
            return "frame"
        if isinstance(value, pd.Series):
            return "series"
        if isinstance(value, dict):
            return "dict"
        if isinstance(value, list | tuple | pd.Index | np.ndarray):
            return "sequence"
        return "function" if callable(value) else "object"

    def plain(value, depth=0):
        if depth > 5:
            return repr(value)[:200]
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, pd.Index | pd.Series | np.ndarray):
            return [plain(v, depth + 1) for v in value.tolist()]
        if isinstance(value, dict):
            return {str(k): plain(v, depth + 1) for k, v in list(value.items())[:200]}
        if isinstance(value, list | tuple | set):
            return [plain(v, depth + 1) for v in list(value)[:10_000]]
        if value is None or isinstance(value, bool | int | float | str):
            return value if not isinstance(value, str) else value[:20_000]
        return repr(value)[:200]

    def save(value, stem):
        meta = {"kind": kind(value), "type": f"{type(value).__module__}.{type(value).__qualname__}"}
        if meta["kind"] in ("frame", "series"):
            frame = value.to_frame("__value__") if meta["kind"] == "series" else value
            frame = frame.copy()
            frame.columns = [str(c) for c in frame.columns]
            try:
                frame.to_parquet(out / f"{stem}.parquet")
            except (TypeError, ValueError, ImportError, OverflowError):
                frame.astype(str).to_parquet(out / f"{stem}.parquet")
            meta["file"] = f"{stem}.parquet"
        elif meta["kind"] not in ("function", "object"):
            meta["value"] = plain(value)
        else:
            meta["repr"] = repr(value)[:200]
        return meta

    def alarm(signum, frame):
        raise TimeoutError(f"took more than {spec['call_timeout']} s")

    manifest = {"names": {}, "outputs": {}, "searches": {}}
    for name in spec["names"]:
        if name in namespace:
            manifest["names"][name] = save(namespace[name], name)
    for function, cases in spec["functions"].items():
        manifest["outputs"][function] = {}
        if not callable(namespace.get(function)):
            continue
        for case in cases:
            path = Path(spec["inputs"]) / function / f"{case}.parquet"
            argument = pd.read_parquet(path)
            timed = hasattr(signal, "SIGALRM")  # POSIX; on Windows the cell's limit applies
            if timed:
                previous = signal.signal(signal.SIGALRM, alarm)
                signal.alarm(int(spec["call_timeout"]))
            try:
                result = namespace[function](argument.copy())
                meta = save(result, f"{function}__{case}")
            except BaseException as err:  # noqa: BLE001 - the learner's code may raise anything
                meta = {"kind": "error", "error": f"{type(err).__name__}: {err}"[:500]}
                meta["traceback"] = traceback.format_exc()[-1500:]
            finally:
                if timed:
                    signal.alarm(0)
                    signal.signal(signal.SIGALRM, previous)
            manifest["outputs"][function][case] = meta
    for name in spec["searches"]:
        search = namespace.get(name)
        if search is None or not hasattr(search, "cv_results_"):
            continue
        info = {}
        for key, get in {
            "cv": lambda s: f"{type(s.cv).__module__}.{type(s.cv).__qualname__}",
            "n_splits": lambda s: int(s.n_splits_),
            "scoring": lambda s: s.scoring if isinstance(s.scoring, str) else repr(s.scoring),
            "n_candidates": lambda s: len(s.cv_results_["params"]),
            "best_score": lambda s: float(s.best_score_),
            "best_params": lambda s: plain(s.best_params_),
            "features": lambda s: [str(c) for c in s.best_estimator_.feature_names_in_],
        }.items():
            try:
                info[key] = get(search)
            except Exception as err:  # noqa: BLE001 - a missing attribute is an answer too
                info[key] = None
                info[f"{key}_error"] = f"{type(err).__name__}: {err}"[:300]
        try:
            import cloudpickle

            (out / f"{name}.pkl").write_bytes(cloudpickle.dumps(search))
            info["pickle"] = f"{name}.pkl"
        except Exception as err:  # noqa: BLE001
            info["pickle_error"] = f"{type(err).__name__}: {err}"[:300]
        manifest["searches"][name] = info
    (out / "manifest.json").write_text(json.dumps(manifest, default=repr))
