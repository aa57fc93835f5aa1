import pytest

from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError


def test_verification_error_names_step_and_party() -> None:
    err = VerificationError("bad share", step="step 7", party="node-2")
    assert "step 7" in str(err) and "node-2" in str(err) and "bad share" in str(err)
    with pytest.raises(StatledgerError, match="step 7"):
        raise err


def test_malformed_is_value_error() -> None:
    assert issubclass(MalformedError, ValueError)
    assert not issubclass(VerificationError, MalformedError)
