"""The options each endpoint takes, checked with the command line's own types: one line per mistake, naming it.

Values come from JSON (numbers, strings, lists) or from form fields (strings); both go through the same parsers.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from tasks.common.arguments import non_negative_int, positive_float, positive_int, probability
from tasks.serving.errors import UNPROCESSABLE, BadRequest

# Ceilings that keep one request from holding a worker for minutes.
MOST = {"num": 16, "length": 2048, "frames": 1024, "beam": 16, "texts": 64, "characters": 1000, "horizon": 5000,
        "top": 100, "tempo": 400}


@dataclass(frozen=True)
class Option:
    parse: Optional[Callable[[str], Any]]  # text -> value, raising ArgumentTypeError "must be ..."; None: as given
    default: Any = None
    most: Optional[float] = None


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")
    return value in ("true", "1", "yes")


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return text

    return parse


def subset(*allowed: str) -> Callable[[str], tuple[str, ...]]:
    """'midi,png' or ["midi", "png"] (as JSON text) -> ('midi', 'png'), each one of `allowed`."""
    def parse(text: str) -> tuple[str, ...]:
        items = json.loads(text) if text.lstrip().startswith("[") else text.split(",")
        chosen = tuple(str(item).strip() for item in items if str(item).strip())
        wrong = [item for item in chosen if item not in allowed]
        if wrong or not chosen:
            raise argparse.ArgumentTypeError(f"must list some of {', '.join(allowed)}, got {text!r}")
        return chosen

    return parse


def as_text(value: Any) -> str:
    """A JSON value as the text a form field would hold (lists stay JSON, so '[60, -2]' parses either way)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def read_options(endpoint: str, given: Mapping[str, Any], spec: Mapping[str, Option]) -> dict[str, Any]:
    """The options of a request, each parsed and within its ceiling, defaults filled in; BadRequest otherwise."""
    unknown = [name for name in given if name not in spec]
    if unknown:
        raise BadRequest(f"{endpoint} has no option {unknown[0]!r}; it takes {', '.join(spec)}", UNPROCESSABLE)
    options = {}
    for name, option in spec.items():
        value = given.get(name)
        if value is None or (value == "" and option.parse is not None):  # an empty form field: not given
            options[name] = option.default
            continue
        if option.parse is None:
            options[name] = value
            continue
        try:
            options[name] = option.parse(as_text(value))
        except (argparse.ArgumentTypeError, ValueError) as error:
            raise BadRequest(f"{name} {str(error).splitlines()[0]}", UNPROCESSABLE) from None
        if option.most is not None and options[name] > option.most:
            raise BadRequest(f"{name} must be at most {option.most:g} on this server, got {value!r}", UNPROCESSABLE)
    return options


def json_object(payload: Any, endpoint: str, example: str) -> dict:
    if not isinstance(payload, dict):
        raise BadRequest(f"{endpoint} reads a JSON object, e.g. {example}; got a {type(payload).__name__}")
    return payload


FORMATS = ("events", "midi", "png", "wav")

MELODY = {
    "num": Option(positive_int, 4, MOST["num"]),
    "length": Option(positive_int, 128, MOST["length"]),
    "temperature": Option(positive_float, 1.0, 10),
    "top_k": Option(non_negative_int, 0),
    "top_p": Option(probability, 1.0),
    "seed": Option(whole),
    "greedy": Option(boolean, False),
    "primer": Option(None),  # events, as a list or text; checked against the model's range
    "tempo": Option(positive_float, 100.0, MOST["tempo"]),
    "formats": Option(subset(*FORMATS), FORMATS),
}
PIANO_ROLL = {
    "num": Option(positive_int, 4, MOST["num"]),
    "frames": Option(positive_int, 64, MOST["frames"]),
    "seed": Option(whole),
    "primer": Option(None),  # chords of MIDI pitches, as a list or text
    "tempo": Option(positive_float, 80.0, MOST["tempo"]),
    "formats": Option(subset(*FORMATS), FORMATS),
}
TRANSLATE = {"text": Option(None), "texts": Option(None), "beam": Option(positive_int, None, MOST["beam"])}
TRANSCRIBE = {"decoder": Option(choice("greedy", "beam"))}
CLASSIFY = {"top": Option(positive_int, 5, MOST["top"])}
FORECAST = {"horizon": Option(positive_int, None, MOST["horizon"]), "plot": Option(boolean, False)}


def sentences(options: dict) -> list[str]:
    """{"text": "..."} or {"texts": [...]} -> the sentences, each a string of at most MOST["characters"]."""
    if (options["text"] is None) == (options["texts"] is None):
        raise BadRequest('give exactly one of "text" (a sentence) or "texts" (a list of sentences)')
    texts = [options["text"]] if options["text"] is not None else options["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        which = '"text" must be a string' if options["text"] is not None else '"texts" must be a list of strings'
        raise BadRequest(which, UNPROCESSABLE)
    if not any(t.strip() for t in texts):
        raise BadRequest("nothing to translate: every text is empty", UNPROCESSABLE)
    if len(texts) > MOST["texts"]:
        raise BadRequest(f'"texts" holds {len(texts)} sentences; this server translates at most {MOST["texts"]} '
                         "per request", UNPROCESSABLE)
    longest = max(len(t) for t in texts)
    if longest > MOST["characters"]:
        raise BadRequest(f"a text of {longest} characters; this server translates at most {MOST['characters']}",
                         UNPROCESSABLE)
    return texts
