"""The error hierarchy's contract beyond one module: MissingDependency is an ImportError."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pytest

from mfa_core.errors import ErrorCode, MFAError, MissingDependency
from mfa_core.qr import qr_svg
from mfa_core.uri import build_uri


def test_missing_dependency_is_an_mfa_error_and_an_import_error() -> None:
    error = MissingDependency("the Redis store needs redis-py: pip install 'mfa_core[redis]'")
    assert isinstance(error, MFAError)
    assert isinstance(error, ImportError)
    assert error.code is ErrorCode.MISSING_DEPENDENCY
    assert error.message == str(error)
    assert repr(error).startswith("MissingDependency(code='missing_dependency'")
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(again) is MissingDependency
    assert again.code is ErrorCode.MISSING_DEPENDENCY
    assert again.message == error.message


def test_except_import_error_catches_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "segno", None)  # makes `import segno` fail
    uri = build_uri(b"k" * 20, account="alice@example.com", issuer="Example")
    with pytest.raises(ImportError) as info:
        qr_svg(uri)
    assert isinstance(info.value, MissingDependency)
    assert info.value.code is ErrorCode.MISSING_DEPENDENCY


def test_the_usual_feature_check_works_on_a_missing_store_extra() -> None:
    # A fresh interpreter where `redis` cannot be imported: the host's `except ImportError`
    # fallback must run, and what it caught must still be the typed error.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None
        try:
            from mfa_core.stores.redis import RedisStore
        except ImportError as exc:
            from mfa_core.errors import MissingDependency
            assert isinstance(exc, MissingDependency), type(exc)
            print("fallback", exc.code.value)
        else:
            raise SystemExit("imported without redis")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fallback missing_dependency"
