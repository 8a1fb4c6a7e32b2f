"""``ray.serve.http_adapters``: turn an HTTP request into the input a predictor takes.

Each adapter is ``async def adapter(request) -> data`` (a Starlette Request in); a
:class:`~raylite.serve.air_integrations.PredictorDeployment` calls its ``http_adapter`` on each
request and hands the result to ``predictor.predict``.

    json_request          the JSON body as it is (dict or list)
    json_to_ndarray       {"array": [...], "shape": [...], "dtype": "float32"} -> numpy array
    json_to_multi_ndarray {"a": [...], "b": [...]} -> {"a": ndarray, "b": ndarray}
    pandas_read_json      the body through pandas.read_json (records: [{"a": 1}, ...])
    starlette_request     the request itself
"""

from __future__ import annotations

from typing import Any

__all__ = ["json_request", "json_to_ndarray", "json_to_multi_ndarray", "pandas_read_json",
           "starlette_request"]


async def _json(request: Any) -> Any:
    import json
    body = await request.body()
    try:
        return json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        from raylite.serve._http import BadRequest
        raise BadRequest(f"the request body is not JSON ({exc.msg} at position {exc.pos})") \
            from None


async def json_request(request: Any) -> Any:
    """The request's JSON body."""
    return await _json(request)


async def starlette_request(request: Any) -> Any:
    """The Starlette Request, untouched."""
    return request


async def json_to_ndarray(request: Any) -> Any:
    """A numpy array from ``{"array": [...], "shape": [...], "dtype": "..."}``; a bare JSON
    list is taken as the array."""
    import numpy as np
    payload = await _json(request)
    if isinstance(payload, list):
        payload = {"array": payload}
    if not isinstance(payload, dict) or "array" not in payload:
        from raylite.serve._http import BadRequest
        raise BadRequest('json_to_ndarray expects {"array": [...], "shape": [...] (optional), '
                         '"dtype": "..." (optional)}')
    try:
        array = np.asarray(payload["array"], dtype=payload.get("dtype"))
        if payload.get("shape") is not None:
            array = array.reshape(payload["shape"])
    except (TypeError, ValueError) as exc:
        from raylite.serve._http import BadRequest
        raise BadRequest(f"json_to_ndarray: {exc}") from None
    return array


async def json_to_multi_ndarray(request: Any) -> dict:
    """``{name: ndarray}`` from a JSON object of lists."""
    import numpy as np
    payload = await _json(request)
    if not isinstance(payload, dict):
        from raylite.serve._http import BadRequest
        raise BadRequest('json_to_multi_ndarray expects a JSON object: {"a": [...], "b": [...]}')
    return {name: np.asarray(values) for name, values in payload.items()}


async def pandas_read_json(request: Any) -> Any:
    """A DataFrame read from the JSON body with ``pandas.read_json`` (e.g. a list of records)."""
    import io

    import pandas as pd
    body = await request.body()
    try:
        return pd.read_json(io.StringIO(body.decode()))
    except ValueError as exc:
        from raylite.serve._http import BadRequest
        raise BadRequest(f"pandas_read_json could not read the body: {exc}") from None
