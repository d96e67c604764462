"""A small SQLAlchemy application on router_lib.contrib.sqlalchemy_routing (the tests in
tests/integration/test_sqlalchemy_routing.py drive it)."""
