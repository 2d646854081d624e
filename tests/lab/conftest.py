"""Lab fixtures for the lab's own tests.

pytest 8 refuses ``pytest_plugins`` in a non-root conftest, so the fixtures are imported
here; once tests/conftest.py says ``pytest_plugins = ["lab.pytest_plugin"]`` this
import can go.
"""

from lab.pytest_plugin import (  # noqa: F401
    kamailio,
    kamailio_401,
    kamailio_factory,
    lab_dir,
    lab_users,
    phone_factory,
    sipp_factory,
)
