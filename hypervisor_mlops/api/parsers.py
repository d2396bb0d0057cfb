"""The JSON parser of every request: DRF's, refusing numbers no float can hold (say 1e309) as a 400."""
import codecs
import json
import math

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # Python reads 1e309 as infinity, which no field can take and int() cannot convert: a 500 later.
        raise ValueError(f"Number out of range: {text}")
    return value


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json.load(codecs.getreader(get_encoding(parser_context or {}))(stream),
                             parse_constant=strict_constant, parse_float=_finite_float)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
