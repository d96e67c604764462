"""A small Django project run against a real topology by tests/integration/test_django_backend.py:
one model, one view behind the read-your-writes middleware."""
