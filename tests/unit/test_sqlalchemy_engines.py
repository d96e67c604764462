"""Pure parts of the SQLAlchemy integration: the URL an endpoint's engine gets."""

from __future__ import annotations

from sqlalchemy import make_url

from router_lib.contrib.sqlalchemy_routing.engines import endpoint_url


def test_endpoint_url_takes_only_the_address_from_the_endpoint() -> None:
    app = make_url("postgresql+psycopg://shop:secret@ignored:6000/shop?application_name=web")
    url = endpoint_url(app, "host=10.0.0.7 port=5433 user=probe password=x dbname=postgres")
    assert (url.host, url.port) == ("10.0.0.7", 5433)
    assert (url.username, url.password, url.database) == ("shop", "secret", "shop")
    assert url.drivername == "postgresql+psycopg"
    assert dict(url.query) == {"application_name": "web"}


def test_endpoint_url_drops_a_host_given_in_the_query() -> None:
    app = make_url("postgresql+psycopg://shop@/shop?host=/run/postgresql&port=5432")
    url = endpoint_url(app, "host=db-1")
    assert (url.host, url.port) == ("db-1", None)
    assert dict(url.query) == {}
