"""Route selection of HTTP APIs (API Gateway v2): the most specific route key wins."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from localcloud.apigateway.http_api import select_route
from localcloud.apigateway.local_api import GatewayError

pytestmark = pytest.mark.unit


def api(*route_keys: str) -> SimpleNamespace:
    return SimpleNamespace(routes={key: SimpleNamespace(route_key=key) for key in route_keys})


@pytest.mark.parametrize(
    ("method", "path", "chosen", "parameters"),
    [
        ("GET", "/items/special", "GET /items/special", {}),  # a literal part beats a parameter
        ("GET", "/items/7", "GET /items/{id}", {"id": "7"}),
        ("POST", "/items/7", "ANY /items/{id}", {"id": "7"}),  # ANY when the method has no route
        ("GET", "/files/a/b.txt", "GET /files/{path+}", {"path": "a/b.txt"}),
        ("GET", "/files", "$default", {}),  # a greedy parameter needs at least one part
        ("GET", "/", "GET /", {}),
        ("DELETE", "/nowhere", "$default", {}),
    ],
)
def test_the_most_specific_matching_route_is_chosen(
    method: str, path: str, chosen: str, parameters: dict[str, str]
) -> None:
    routes = api(
        "GET /items/{id}", "GET /items/special", "ANY /items/{id}", "GET /files/{path+}", "GET /", "$default"
    )
    selected = select_route(routes, method, path)
    assert (selected.route.route_key, selected.path_parameters) == (chosen, parameters)


def test_without_a_matching_route_or_a_default_one_the_answer_is_404() -> None:
    with pytest.raises(GatewayError) as refused:
        select_route(api("GET /items/{id}"), "GET", "/orders/1")
    assert (refused.value.status, refused.value.message) == (404, "Not Found")
