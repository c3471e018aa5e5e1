"""The API tests' world (a Hive, the app over it, keys) for every API test module."""

from tests.unit.test_api_contract import world  # noqa: F401  (fixture)
