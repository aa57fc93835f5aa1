"""A data owner's policy: which queries its provider node answers, and why it refuses.

Pure rule evaluation (no I/O).  The provider node loads the policy from a JSON/TOML file and
calls :meth:`ProviderPolicy.check` before touching any row; a refusal is a
:class:`~statledger.proofs.errors.PolicyError` whose message names the rule, the requested value
and the
allowed one.  The privacy budget itself is enforced with
:class:`statledger.protocol.dp.BudgetLedger`
(persisted by the node).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol.query import QuerySpec

__all__ = ["ProviderPolicy"]


class ProviderPolicy(BaseModel):
    """What a data owner allows.  Every field is documented in docs/deployment.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_statistics: list[str] | None = Field(
        default=None, description="statistics answered; None = all registered statistics"
    )
    allowed_columns: list[str] | None = Field(
        default=None, description="columns a query may touch; None = every column of the dataset"
    )
    allowed_queriers: list[str] | None = Field(
        default=None, description="querier party ids answered; None = every registered querier"
    )
    min_cell_size: int = Field(default=1, ge=1, description="smallest min_cell_size accepted")
    min_providers: int = Field(default=2, ge=1, description="smallest min_providers accepted")
    require_dp: bool = Field(default=False, description="refuse queries without DP noise")
    budget_rho: float | None = Field(
        default=None, gt=0, description="total zCDP budget per dataset; None = no DP accounting"
    )

    @classmethod
    def parse(cls, obj: Any) -> ProviderPolicy:
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "policy"
            raise MalformedError(f"policy.{where}: {first['msg']}") from None

    def check(self, spec: QuerySpec, querier: str, dataset_columns: list[str]) -> None:
        """Raise :class:`PolicyError` naming the first rule the query breaks."""
        if self.allowed_queriers is not None and querier not in self.allowed_queriers:
            raise PolicyError(f"querier {querier!r} is not in allowed_queriers")
        if self.allowed_statistics is not None and spec.statistic not in self.allowed_statistics:
            raise PolicyError(
                f"statistic {spec.statistic!r} is not allowed (allowed: "
                f"{', '.join(self.allowed_statistics)})"
            )
        used = sorted(set(spec.used_columns()))
        for col in used:
            if col not in dataset_columns:
                raise PolicyError(f"column {col!r} does not exist in this dataset")
            if self.allowed_columns is not None and col not in self.allowed_columns:
                raise PolicyError(f"column {col!r} is not in allowed_columns")
        if spec.min_cell_size < self.min_cell_size:
            raise PolicyError(
                f"min_cell_size {spec.min_cell_size} is below this owner's minimum "
                f"{self.min_cell_size}"
            )
        if spec.min_providers < self.min_providers:
            raise PolicyError(
                f"min_providers {spec.min_providers} is below this owner's minimum "
                f"{self.min_providers}"
            )
        if self.require_dp and spec.privacy.mechanism == "none":
            raise PolicyError("this owner requires differential privacy (privacy.mechanism)")
