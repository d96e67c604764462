"""psycopg placeholders (``%s``, ``%(name)s``) rewritten as PostgreSQL's ``$n`` for parsing.

PostgreSQL's parser does not know psycopg's placeholders, so a statement with parameters
must be seen the way psycopg will send it: psycopg replaces every ``%s``/``%b``/``%t`` and
``%(name)s`` with ``$n`` and ``%%`` with ``%``, anywhere in the text, and only when parameters
are given. This module mirrors that rule; anything psycopg itself would reject raises
ValueError (the classifier then sends the statement to the primary, where psycopg reports it).
"""

from __future__ import annotations

_FORMATS = frozenset("sbt")


def to_dollar_placeholders(text: str) -> str:
    if "%" not in text:
        return text
    out: list[str] = []
    position = 0
    positional = 0
    named: dict[str, int] = {}
    while True:
        percent = text.find("%", position)
        if percent < 0:
            out.append(text[position:])
            break
        out.append(text[position:percent])
        following = text[percent + 1 : percent + 2]
        if following == "%":
            out.append("%")
            position = percent + 2
        elif following in _FORMATS:
            positional += 1
            out.append(f"${positional}")
            position = percent + 2
        elif following == "(":
            close = text.find(")", percent + 2)
            if close < 0 or text[close + 1 : close + 2] not in _FORMATS:
                raise ValueError(f"incomplete placeholder at index {percent}")
            number = named.setdefault(text[percent + 2 : close], len(named) + 1)
            out.append(f"${number}")
            position = close + 2
        else:
            raise ValueError(f"unsupported placeholder at index {percent}")
        if positional and named:
            raise ValueError("positional and named placeholders mixed")
    return "".join(out)
