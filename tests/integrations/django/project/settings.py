"""Settings of the test project.

DJTRACE_TEST_DB=sqlite (default), postgres or mysql (the PostgreSQL or MariaDB server
scripts/services.sh starts, see tests/support/services.py). DJTRACE_TEST_SQLITE names an
SQLite file instead of the default one, for servers run in a subprocess.
"""

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[2]  # tests/
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support import services  # noqa: E402

SECRET_KEY = "djtrace-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "project.web",
    "project.shop",
    "djtrace",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.web.middleware.MixinMiddleware",
    "project.web.middleware.function_middleware",
    "project.web.middleware.DualModeMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [str(HERE / "web" / "jinja2")],
        "APP_DIRS": False,
        "OPTIONS": {},
    },
]

if os.environ.get("DJTRACE_TEST_DB", "sqlite") == "postgres":
    DATABASES = {"default": services.postgres_settings(
        os.environ.get("DJTRACE_TEST_PG_NAME", "djtrace_test"))}
elif os.environ.get("DJTRACE_TEST_DB", "sqlite") == "mysql":
    DATABASES = {"default": services.mysql_settings()}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DJTRACE_TEST_SQLITE")
            or os.path.join(tempfile.gettempdir(), "djtrace-test-project.sqlite3"),
        }
    }

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "djtrace-tests"},
    "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
              "LOCATION": services.redis_url(1)},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
}

DJTRACE = {
    "service_name": "djtrace-django-tests",
    "exporters": os.environ.get("DJTRACE_TEST_EXPORTERS", "none"),
}
if os.environ.get("DJTRACE_TEST_N_PLUS_ONE_STRICT"):  # subprocess tests of strict mode
    DJTRACE["n_plus_one_strict"] = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING_CONFIG = None
