"""The portal's colours, chosen by the partner with `?theme=` so that it fits their app.

`theme=accent:0b57d0,background:ffffff` names colours from a fixed list, each a 3- or 6-digit
hex value (with or without `#`). Anything else in the parameter is dropped, never copied: the
stylesheet is written from the parsed values alone, so no text of the request reaches the CSS.
"""

from __future__ import annotations

import re

COLOURS = ("accent", "accent-text", "background", "surface", "text", "muted", "border", "danger")
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
MAX_LENGTH = 400


def parse_theme(value: str | None) -> dict[str, str]:
    """The valid `name: #rrggbb` pairs of a `theme` parameter, in the order of COLOURS."""
    found: dict[str, str] = {}
    for part in (value or "")[:MAX_LENGTH].split(","):
        name, _, colour = part.strip().partition(":")
        match = _HEX.match(colour.strip())
        if name.strip() in COLOURS and match:
            digits = match.group(1).lower()
            if len(digits) == 3:
                digits = "".join(d * 2 for d in digits)
            found[name.strip()] = "#" + digits
    return {name: found[name] for name in COLOURS if name in found}


def theme_param(colours: dict[str, str]) -> str:
    """The canonical `theme` parameter of parsed colours (what the session keeps)."""
    return ",".join(f"{name}:{colour[1:]}" for name, colour in colours.items())


def theme_css(colours: dict[str, str]) -> str:
    """CSS custom properties overriding the stylesheet's defaults."""
    if not colours:
        return ""
    lines = "".join(f"  --{name}: {colour};\n" for name, colour in colours.items())
    return ":root {\n" + lines + "}\n"
