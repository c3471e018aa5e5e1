"""The log's transcoder: the library's JSON format, written with orjson.

Every event the hive records is encoded once; the library's ``JSONTranscoder`` does it
with the ``json`` module (a new C encoder per call, and a Python hook per UUID and
datetime). This one writes exactly the stored format it reads: the same
``{"_type_": name, "_data_": ...}`` tags from the same registered transcodings, compact
separators, UTF-8. One walk in Python tags the values, then orjson writes the document:
about 0.7x the library's time per event (``tests/bench/transcoder.py``). Reading is the
library's own (orjson reads no faster once the tags are turned back into values, and it
reads an integer beyond 64 bits as a float).

Where orjson would write anything differently, the library's encoder writes it: anything
orjson refuses (an integer beyond 64 bits, a key that is not a string, a lone surrogate)
and any float that is not finite (orjson writes ``null``, json ``NaN``). A float may be
spelt differently (orjson ``0.00005``, json ``5e-05``): it reads back as the same float,
and each row's chain hash is over the bytes as stored.
``tests/unit/test_transcoder.py`` checks that the library reads what this writes as the
same values, whatever the values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError


class _Refused(Exception):
    """A value orjson would write differently: the library's encoder writes it."""


class FastJSONTranscoder(JSONTranscoder):
    def __init__(self) -> None:
        super().__init__()
        self._tag = _tagger(self.types)  # reads ``types`` as ``register`` fills it

    def encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(self._tag(obj))
        except (_Refused, orjson.JSONEncodeError):
            return super().encode(obj)


def _tagger(types: dict[type, Any]) -> Callable[[Any], Any]:
    """The document orjson writes as the library's encoder writes ``o``: registered types
    tagged (after JSON's own types, as json checks them first), tuples as lists."""
    isfinite = math.isfinite

    def tag(o: Any) -> Any:
        kind = type(o)
        if kind is str or kind is int or kind is bool or o is None:
            return o
        if kind is dict:
            return {k: tag(v) for k, v in o.items()}
        if kind is list or kind is tuple:
            return [tag(v) for v in o]
        if kind is float:
            if not isfinite(o):
                raise _Refused(o)
            return o
        transcoding = types.get(kind)
        if transcoding is not None:
            return {"_type_": transcoding.name, "_data_": tag(transcoding.encode(o))}
        # Subclasses, as json takes them: a str or int (an enum of ours) as its value, ...
        if isinstance(o, (str, int)):
            return o
        if isinstance(o, float):
            return tag(float(o))
        if isinstance(o, dict):
            return {k: tag(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [tag(v) for v in o]
        raise TranscodingNotRegisteredError(f"Object of type {kind} is not serializable")

    return tag
