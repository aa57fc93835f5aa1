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

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol.query import QuerySpec

__all__ = ["ExactQuota", "ProviderPolicy", "SECONDS_PER_DAY"]

SECONDS_PER_DAY = 86_400


class ExactQuota(BaseModel):
    """At most ``max`` exact (non-DP) answers per dataset in any window of ``period_days``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(ge=0, description="exact answers allowed per window")
    period_days: float = Field(gt=0, le=36_500, description="length of the rolling window")


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
    # -- privacy fields (docs/deployment.md, "Privacy fields of the policy") ----------------
    exact: Literal["allow", "deny"] | ExactQuota = Field(
        default="allow",
        description="exact (non-DP) answers: allow, deny, or {max, period_days} per dataset")
    exact_statistics: list[str] | None = Field(
        default=None, description="statistics answered exactly; None = every allowed one")
    exact_columns: list[str] | None = Field(
        default=None, description="columns an exact query may touch; None = every allowed one")
    require_dp_filtered: bool = Field(
        default=False, description="refuse an exact query that has filters")
    differencing_check: bool = Field(
        default=True, description="refuse an exact query any of whose row sets (its "
                                  "selection, each group-by cell, histogram bin or "
                                  "Kaplan-Meier grid cell) differs from an earlier exact "
                                  "query's by 1 to min_cell_size - 1 rows")

    @classmethod
    def parse(cls, obj: Any) -> ProviderPolicy:
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "policy"
            raise MalformedError(f"policy.{where}: {first['msg']}") from None

    def check(self, spec: QuerySpec, querier: str, dataset_columns: list[str], *,
              own_columns: list[str] | None = None) -> None:
        """Raise :class:`PolicyError` naming the first rule the query breaks.  ``own_columns``:
        the columns this owner answers for when it holds only some of the query's (a
        vertically partitioned query); default, every column the query uses."""
        if self.allowed_queriers is not None and querier not in self.allowed_queriers:
            raise PolicyError(f"querier {querier!r} is not in allowed_queriers")
        if self.allowed_statistics is not None and spec.statistic not in self.allowed_statistics:
            raise PolicyError(
                f"statistic {spec.statistic!r} is not allowed (allowed: "
                f"{', '.join(self.allowed_statistics)})"
            )
        used = sorted(set(spec.used_columns() if own_columns is None else own_columns))
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
        if spec.privacy.mechanism == "none":
            self._check_exact_rules(spec, used)

    def _check_exact_rules(self, spec: QuerySpec, used: list[str]) -> None:
        if self.exact == "deny":
            raise PolicyError("this owner answers no exact query (policy exact = \"deny\"); "
                              "ask with differential privacy (privacy.mechanism)")
        if self.exact_statistics is not None and spec.statistic not in self.exact_statistics:
            raise PolicyError(f"statistic {spec.statistic!r} is answered only with "
                              "differential privacy (policy exact_statistics)")
        for col in used:
            if self.exact_columns is not None and col not in self.exact_columns:
                raise PolicyError(f"column {col!r} is answered only with differential "
                                  "privacy (policy exact_columns)")
        if self.require_dp_filtered and spec.filters:
            raise PolicyError("this owner answers filtered queries only with differential "
                              "privacy (policy require_dp_filtered)")

    def check_exact_quota(self, dataset: str, answered_at: list[float], now: float) -> None:
        """Raise :class:`PolicyError` when an ``{max, period_days}`` quota is used up:
        ``answered_at`` are the times (seconds) of this dataset's earlier exact answers."""
        if not isinstance(self.exact, ExactQuota):
            return
        since = now - self.exact.period_days * SECONDS_PER_DAY
        recent = sum(1 for t in answered_at if t > since)
        if recent >= self.exact.max:
            raise PolicyError(
                f"dataset {dataset}: the owner's quota of exact answers is used up "
                f"({self.exact.max} per {self.exact.period_days:g} days; policy exact); "
                "ask with differential privacy")
