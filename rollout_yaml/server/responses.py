"""JSON answers written by the one codec (`json_codec.dumps`): fast, and valid JSON whatever
a stored record holds."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse as _StarletteJSONResponse

from rollout_yaml import json_codec


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return json_codec.dumps(content)
