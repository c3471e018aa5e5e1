"""The log's transcoder: the library's JSON format, written and read with orjson.

Every event the hive records is encoded once, and every event a process did not write
itself is decoded once; with the library's ``JSONTranscoder`` (the ``json`` module, a new C
encoder per call, a Python hook per UUID and datetime, an object hook per dict) that is
most of the cost of an event outside the database. This one keeps the stored format
exactly: the same ``{"_type_": name, "_data_": ...}`` tags from the same registered
transcodings, compact separators, UTF-8. Values are tagged by one walk in Python, then
orjson does the rest; reading is orjson, then one walk that turns tags back into values.

Where orjson would read or write anything differently, the library's own path does it:
- writing: anything orjson refuses (an integer beyond 64 bits, a key that is not a
  string) and any float that is not finite (orjson writes ``null``, ``json`` ``NaN``);
- reading: anything orjson refuses (``NaN``, a lone surrogate), and any document with a
  run of 19 digits or more, since orjson reads an integer beyond 64 bits as a float.
Floats may be spelt differently (orjson ``0.00005``, ``json`` ``5e-05``); both read back
as the same float, and each row's chain hash is over the bytes as stored.
``tests/unit/test_transcoder.py`` checks both directions against the library's.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError

_LONG_NUMBER = re.compile(rb"\d{19}")


class _Refused(Exception):
    """A value orjson would write differently: the library's encoder writes it."""


class FastJSONTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(self._tagged(obj))
        except (_Refused, orjson.JSONEncodeError):
            return super().encode(obj)

    def decode(self, data: bytes) -> Any:
        if _LONG_NUMBER.search(data) is None:
            try:
                return self._untagged(orjson.loads(data))
            except orjson.JSONDecodeError:
                pass
        return super().decode(data)

    def _tagged(self, o: Any) -> Any:
        kind = type(o)
        if kind is str or kind is int or kind is bool or o is None:
            return o
        if kind is dict:
            return {k: self._tagged(v) for k, v in o.items()}
        if kind is list or kind is tuple:
            return [self._tagged(v) for v in o]
        if kind is float:
            if not math.isfinite(o):
                raise _Refused(o)
            return o
        transcoding = self.types.get(kind)
        if transcoding is not None:
            return {"_type_": transcoding.name, "_data_": self._tagged(transcoding.encode(o))}
        # Subclasses, as json takes them: a str or int (an enum of ours) as its value, ...
        if isinstance(o, (str, int)):
            return o
        if isinstance(o, float):
            return self._tagged(float(o))
        if isinstance(o, dict):
            return {k: self._tagged(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [self._tagged(v) for v in o]
        raise TranscodingNotRegisteredError(f"Object of type {kind} is not serializable")

    def _untagged(self, o: Any) -> Any:
        kind = type(o)
        if kind is dict:
            d = {k: self._untagged(v) for k, v in o.items()}
            if len(d) == 2 and "_type_" in d and "_data_" in d:
                transcoding = self.names.get(d["_type_"])
                if transcoding is None:
                    raise TranscodingNotRegisteredError(f"no transcoding named {d['_type_']!r}")
                return transcoding.decode(d["_data_"])
            return d
        if kind is list:
            return [self._untagged(v) for v in o]
        return o
