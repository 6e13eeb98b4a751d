"""Models and preprocessing as files that cannot run code: scikit-learn objects in the skops
format (https://skops.readthedocs.io), loaded only when every type they name is trusted.

Unpickling a file runs whatever code its author put in it, so the pipeline never unpickles one:
each model and scaler it hands between tasks, and the ones a release carries for it, are skops
files. Loading one builds the objects from a schema of type names, and refuses the file when it
names a type outside skops' defaults (scikit-learn's estimators, NumPy and SciPy arrays, Python's
builtin containers) and ``TRUSTED_TYPES`` below: a list fixed here, never read from a file.

``pickle_bytes`` makes the joblib pickles a release also carries for users who load them by hand
(``model.pkl``, ``scaler.pkl``): from an object loaded from its skops file, so the pickle holds
exactly what the pipeline evaluated, and the same skops file always gives the same bytes.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from etl.catalog import IntegrityError

#: Types the pipeline's own models and scalers need beyond skops' defaults (what
#: ``skops.io.get_untrusted_types`` lists for each candidate and the scaler; all scikit-learn's
#: or NumPy's own; tests/etl/storage/test_objects.py checks that every candidate needs them all).
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",                  # the imputer's and the scaler's fitted dtypes
    "sklearn.utils._bunch.Bunch",   # VotingClassifier.named_estimators_
    "sklearn.calibration._CalibratedClassifier",  # the calibrated SVM's fitted calibration
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",      # the fitted trees of the forests
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # gradient boosting's trees
)


#: The time written for every member of a skops file (the zip format's earliest).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def dumps(obj: Any) -> bytes:
    """``obj`` in the skops format, the same bytes for the same object (``canonical``)."""
    import skops.io

    return canonical(skops.io.dumps(obj))


def canonical(data: bytes) -> bytes:
    """A skops file rewritten so that its bytes depend on its content only: skops names each
    object by its memory address (``__id__``, and the array files ``<id>.npy``) and stamps each
    member with the time; here the ids are numbered in order of first appearance, the files
    named after them, the members sorted and dated 1980-01-01. What loads is the same: the
    same objects, sharing what they shared."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = {name: source.read(name) for name in source.namelist()}
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, list):
            return [renumber(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                value = ids.setdefault(value, len(ids))
            elif key == "file" and isinstance(value, str) and value in members:
                value = files.setdefault(value, f"{len(files)}{value[value.rfind('.'):]}")
            out[key] = renumber(value)
        return out

    schema = renumber(json.loads(members.pop("schema.json")))
    renamed = {files[name]: body for name, body in members.items()}
    renamed["schema.json"] = json.dumps(schema, indent=2).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as target:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o600 << 16
            target.writestr(info, renamed[name])
    return buffer.getvalue()


def loads(data: bytes, source: object) -> Any:
    """The object a skops file's bytes hold, built only from trusted types.

    Args:
        source: the file's name or path, for the message.

    Raises:
        IntegrityError: the bytes are not a skops file (a pickle, say), or name a type that is
            not trusted; one line, and nothing of the file was run.
    """
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
        refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
        if refused:
            raise IntegrityError(f"{source}: the model file names types the pipeline does not trust "
                                 f"({', '.join(refused)}); refusing to load it")
        return skops.io.loads(data, trusted=list(TRUSTED_TYPES))
    except IntegrityError:
        raise
    except UntrustedTypesFoundException as exc:
        raise IntegrityError(f"{source}: the model file names types the pipeline does not trust "
                             f"({str(exc).splitlines()[0]}); refusing to load it") from None
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise IntegrityError(f"{source}: not a model file the pipeline can load safely (a skops file): "
                             f"{type(exc).__name__}; refusing to load it") from None


def pickle_bytes(obj: Any) -> bytes:
    """``obj`` as a joblib pickle (for users' ``joblib.load``; the pipeline never loads one)."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()
