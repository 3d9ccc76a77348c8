"""Gateway-response templates rendered the way API Gateway renders them.

A gateway response's body template is not a VTL mapping template: API Gateway substitutes
``$context.<name>`` and ``$stageVariables.<name>`` values into the text, as they are, and
leaves everything else literal (``$util.escapeJavaScript(...)``, ``#set``, ``$input``...).
AWS documents ``$context.error.messageString`` as "the quoted value of
$context.error.message", i.e. the message between two double quotes with nothing escaped.
(AWS API Gateway developer guide: "Gateway responses", the
``x-amazon-apigateway-gateway-responses.responseTemplates`` object and the mapping
template variable reference.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(r"\$(context|stageVariables)\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)")


class UnknownVariableError(KeyError):
    """A template uses a variable the test gave no value for."""


def context_for(message: str, **values: str) -> dict[str, str]:
    """$context values of one refused request whose API Gateway message is ``message``;
    messageString is derived from it as API Gateway derives it."""
    return {
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "error.responseType": "BAD_REQUEST_BODY",
        "error.message": message,
        "error.messageString": f'"{message}"',
        "error.validationErrorString": message,
        **values,
    }


def render(
    template: str,
    context: Mapping[str, str],
    stage_variables: Mapping[str, str] | None = None,
) -> str:
    """The body API Gateway sends for ``template``. A ``$context``/``$stageVariables``
    name without a value here raises, so a test cannot pass by rendering a variable
    nobody thought about."""
    sources = {"context": context, "stageVariables": stage_variables or {}}

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        values = sources[kind]
        # The longest known name wins ($context.error.message vs .messageString); a
        # trailing part that is not a name of the variable is text after it.
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in values:
                rest = ".".join(parts[end:])
                return values[candidate] + (f".{rest}" if rest else "")
        raise UnknownVariableError(f"${kind}.{name}")

    return _VARIABLE.sub(substitute, template)
