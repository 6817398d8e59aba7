"""The learner tests' small planted logs, for the trainer tests too."""

from tests.learners.conftest import small, small_implicit  # noqa: F401
