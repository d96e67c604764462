"""Settings of the test project. DATABASES comes from REPLICADB_DJANGO_DATABASES (JSON),
which the test fixture sets after starting the topology and before ``django.setup()``."""

from __future__ import annotations

import json
import os

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = ["tests.django_app"]
MIDDLEWARE = ["router_lib.contrib.django_backend.middleware.ReadYourWritesMiddleware"]
ROOT_URLCONF = "tests.django_app.urls"
DATABASES = json.loads(os.environ.get("REPLICADB_DJANGO_DATABASES", "{}"))
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
