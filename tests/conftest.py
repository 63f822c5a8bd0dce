"""Fixtures shared across the test suite. Tests make their own data; none needs ../shared."""

from __future__ import annotations
