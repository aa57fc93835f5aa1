"""The Python API: run certified queries from a script or a notebook.

``statledger.local({"site-a": df_a, "site-b": "b.csv", ...})`` starts a local cluster of real
processes (a ledger, compute nodes with a threshold key from their key ceremony, one data
owner per site); ``statledger.connect("querier/config.toml")`` talks to a real deployment.
Both return a :class:`Session`; each of its calls runs one query (IRLS: one per round) end to
end and returns a :class:`~statledger.results.Result` holding the certified numbers and the
certificates (docs/python-api.md)::

    with statledger.local({"a": df_a, "b": df_b, "c": df_c}) as s:
        fit = s.ols("y", ["x1", "x2"], bounds={"x1": [0, 10], "x2": [0, 1], "y": [0, 100]})
        fit.params, fit.conf_int(), fit.verify()

Every site is checked before a query is posted: a site that cannot answer it (a missing
column, text in a numeric column) raises :class:`SiteError` naming the site and the reason,
unless ``allow_partial=True``, which warns naming every site left out.  The same checks as
``statledger run`` (statledger.nodes.data).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from statledger.proofs.errors import MalformedError, StatledgerError
from statledger.results import Result, make_result, trust_policy

__all__ = ["Session", "SiteError", "PartialResultWarning", "ClippingWarning", "local",
           "connect"]

#: Dataset name of every site of a local session.
_DATASET = "data"
_SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESERVED = re.compile(r"^(ledger|querier|compute-\d+)$")


class SiteError(MalformedError):
    """A site (data owner) cannot answer the query; the message names it and says why."""


class PartialResultWarning(UserWarning):
    """A result that leaves sites out (``allow_partial=True``); the message names them."""


class ClippingWarning(UserWarning):
    """A site clipped values to the query's bounds; the message names the site and each
    column with a bucketed count (``Result.clipped``), never the count.  A site that withheld
    its counts (a DP query, or fewer selected rows than ``min_cell_size``) raises none:
    ``Result.clipped`` shows it as withheld."""


def _is_dataframe(obj: Any) -> bool:
    return hasattr(obj, "to_parquet") and hasattr(obj, "columns")


class Session:
    """A querier's session with a cluster (from :func:`local` or :func:`connect`)."""

    def __init__(self, querier: Any, *, trust: Any, dataset: str | None = None,
                 sites: Mapping[str, Path] | None = None, cluster: Any = None,
                 work_dir: Path | None = None, trust_file: Path | None = None) -> None:
        self._querier = querier
        self._trust = trust_policy(trust)
        self.dataset = dataset
        #: the local sites' data files (None for a deployment: the owners hold their data)
        self.sites: dict[str, Path] | None = dict(sites) if sites is not None else None
        self._tables: dict[str, Any] = {}
        self._cluster = cluster
        self._work = work_dir
        #: the consortium's trust file: what a reviewer needs to verify a certificate
        self.trust_file = trust_file
        self.closed = False

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the connections; a local session also stops its processes and removes its
        folder (certificates saved elsewhere stay)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._querier.close()
        finally:
            if self._cluster is not None:
                self._cluster.stop()
            if self._work is not None:
                shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = (f"local, sites {', '.join(self.sites)}" if self.sites is not None
                 else f"deployment, consortium {self._trust.consortium_id[:12]}")
        return f"<statledger.Session {where}{' (closed)' if self.closed else ''}>"

    def save_trust(self, path: str | Path) -> Path:
        """Write the consortium's trust file (what ``statledger verify --trust`` pins)."""
        if self.trust_file is None:
            raise MalformedError("this session has no trust file to save")
        out = Path(path)
        shutil.copyfile(self.trust_file, out)
        return out

    # -- queries ------------------------------------------------------------------------
    def _check_sites(self, spec: Any, allow_partial: bool) -> dict[str, str]:
        """Local sessions: the checks of ``statledger run`` before anything is posted."""
        from statledger.nodes.data import check_for_query, check_vertical_owner, load_table

        if self.sites is None:
            return {}
        owners = _vertical_owners(spec)
        if owners is not None:  # a vertical query: only its two owners answer
            missing = [o for o in owners if o not in self.sites]
            if missing:
                raise SiteError(f"params.partition.owners: {missing[0]} is not a site of "
                                "this session")
        bad: dict[str, str] = {}
        for name, path in self.sites.items():
            if owners is not None and name not in owners:
                continue
            try:
                if name not in self._tables:
                    self._tables[name] = load_table(path)
                if owners is not None:
                    check_vertical_owner(self._tables[name], spec, name, name)
                else:
                    check_for_query(self._tables[name], spec, name)
            except StatledgerError as exc:
                bad[name] = str(exc).removeprefix(f"{name}: ")
        if bad and not allow_partial:
            raise SiteError("; ".join(f"site {n}: {r}" for n, r in bad.items())
                            + " (fix the data, or allow_partial=True to go on without it)")
        left = len(self.sites) - len(bad)
        if left < spec.min_providers:
            raise SiteError(f"{left} site(s) can answer, the query needs at least "
                            f"{spec.min_providers} (min_providers)"
                            + "".join(f"; site {n}: {r}" for n, r in bad.items()))
        return bad

    def query(self, spec: Any, *, dataset: str | None = None, allow_partial: bool = False,
              progress: Callable[[str], None] | None = None) -> Result:
        """Run one query (a dict, JSON text or a QuerySpec; docs/queries.md) and return its
        certified :class:`~statledger.results.Result`.  A site that cannot answer or does
        not contribute raises :class:`SiteError` naming it, unless ``allow_partial``."""
        from statledger.nodes.querier import QueryOutcome, run_rounds
        from statledger.protocol.query import QuerySpec

        if self.closed:
            raise MalformedError("this session is closed")
        qs = spec if isinstance(spec, QuerySpec) else QuerySpec.parse(spec)
        left_out = self._check_sites(qs, allow_partial)
        for n, r in left_out.items():
            warnings.warn(f"site {n} is left out of the query: {r}", PartialResultWarning,
                          stacklevel=2)
        owners = _vertical_owners(qs)
        expected = set(self._querier.providers) if owners is None else set(owners)

        def check_round(o: QueryOutcome) -> None:
            missing = {p: o.refusals.get(p, "no submission")
                       for p in sorted(expected - set(o.contributors)) if p not in left_out}
            if missing and not allow_partial:
                raise SiteError("; ".join(f"site {p} did not contribute: {r}"
                                          for p, r in missing.items())
                                + " (allow_partial=True to accept a result without it)")
            for p, r in missing.items():
                left_out[p] = r
                warnings.warn(f"site {p} did not contribute: {r}", PartialResultWarning,
                              stacklevel=3)

        name = dataset if dataset is not None else self.dataset
        outcomes = run_rounds(self._querier, qs, datasets=name, progress=progress,
                              on_round=check_round)
        # what the certificate says counts: a site is left out only if it did not contribute
        took_part = set(outcomes[-1].contributors)
        left_out = {p: r for p, r in left_out.items() if p not in took_part}
        result = make_result(outcomes, trust=self._trust, left_out=left_out)
        from statledger.protocol.calibration import clip_warning

        for site, buckets in result.clipped.items():  # never silent, progress or not
            warn = clip_warning(f"site {site}", buckets)
            if warn is not None:
                warnings.warn(warn, ClippingWarning, stacklevel=2)
        return result

    # -- one call per common statistic ---------------------------------------------------
    def _run(self, base: dict[str, Any], extra: Mapping[str, Any]) -> Result:
        spec: dict[str, Any] = {"version": 1, **base}
        opts = dict(extra)
        run_kw = {k: opts.pop(k) for k in ("dataset", "allow_partial", "progress")
                  if k in opts}
        spec.update(opts)  # any other spec field: max_rows, scale, filters, privacy, ...
        return self.query(spec, **run_kw)

    def mean(self, column: str, bounds: Sequence[float], **kw: Any) -> Result:
        """Mean of ``column`` (clipped to its public ``bounds``); ``group_by=[...]`` with
        ``categories={...}`` for one mean per cell."""
        return self._run({"statistic": "mean", "columns": [column],
                          "bounds": {column: list(bounds)}}, kw)

    def linear_regression(self, target: str, features: Sequence[str],
                          bounds: Mapping[str, Sequence[float]], **kw: Any) -> Result:
        """Ordinary least squares of ``target`` on ``features`` with an intercept; every
        column needs public ``bounds``."""
        cols = [*features, target]
        return self._run({"statistic": "linear_regression", "columns": cols,
                          "bounds": _bounds(bounds, cols),
                          "params": {"target": target, "features": list(features)}}, kw)

    ols = linear_regression

    def logistic(self, target: str, features: Sequence[str],
                 bounds: Mapping[str, Sequence[float]], *,
                 standardize: Mapping[str, Sequence[float]] | None = None,
                 **kw: Any) -> Result:
        """Logistic regression fitted exactly by federated IRLS (one certified query per
        round); ``target`` is 0/1.  ``standardize={col: [center, spread]}`` (public
        constants) helps convergence."""
        cols = [*features, target]
        bnds = _bounds({target: [0.0, 1.0], **dict(bounds)}, cols)
        params: dict[str, Any] = {"target": target, "features": list(features)}
        if standardize is not None:
            params["standardize"] = {k: list(v) for k, v in standardize.items()}
        return self._run({"statistic": "logistic_irls", "columns": cols, "bounds": bnds,
                          "params": params}, kw)

    logistic_regression = logistic

    def cox(self, time: str, event: str, covariates: Sequence[str],
            bounds: Mapping[str, Sequence[float]], *, max_time: int | None = None,
            times: Sequence[float] | None = None, ties: str = "breslow",
            **kw: Any) -> Result:
        """Cox proportional hazards of (``time``, ``event``) on ``covariates`` (each with
        public ``bounds``), fitted by federated Newton rounds (one certified query per
        round) on the public time grid ``1..max_time`` or ``times``; ``ties`` is
        ``"breslow"`` or ``"efron"``; strata through ``group_by``/``categories``."""
        cols = [time, event, *covariates]
        tb = [0.0, float(max_time if max_time is not None else max(times or [0.0]))]
        bnds = _bounds({time: tb, event: [0.0, 1.0], **dict(bounds)}, cols)
        params: dict[str, Any] = {"time": time, "event": event,
                                  "covariates": list(covariates), "ties": ties}
        if max_time is not None:
            params["max_time"] = max_time
        if times is not None:
            params["times"] = list(times)
        return self._run({"statistic": "cox_regression", "columns": cols, "bounds": bnds,
                          "params": params}, kw)

    cox_regression = cox

    def kaplan_meier(self, time: str, event: str, *, max_time: float,
                     bounds: Sequence[float] | None = None, step: int | None = None,
                     max_ties: int | None = None, **kw: Any) -> Result:
        """Kaplan–Meier curves on the integer grid ``step, 2 step, ..., max_time`` (``step``
        default 1; ``event`` is 1 for an event, 0 for censored); ``max_ties`` bounds one
        owner's events (or censorings) at one grid point in one group (default
        ``max_rows``; ``2^b - 1`` makes the range proofs cheapest); ``group_by``/
        ``categories`` for one curve per group and the logrank test."""
        tb = list(bounds) if bounds is not None else [0.0, float(max_time)]
        params: dict[str, Any] = {"time": time, "event": event, "max_time": max_time}
        if step is not None:
            params["step"] = step
        if max_ties is not None:
            params["max_ties"] = max_ties
        return self._run({"statistic": "kaplan_meier", "columns": [time, event],
                          "bounds": {time: tb, event: [0.0, 1.0]}, "params": params}, kw)

    def crosstab(self, rows: str, categories: Mapping[str, Sequence[str]], *,
                 columns: str | None = None, value: str | None = None,
                 bounds: Sequence[float] | None = None, **kw: Any) -> Result:
        """Counts by ``rows`` (and ``columns``) with small-cell suppression; with ``value``
        (and its ``bounds``) the mean of that column per cell."""
        group_by = [rows] + ([columns] if columns is not None else [])
        base: dict[str, Any] = {"statistic": "crosstab", "group_by": group_by,
                                "categories": {k: list(v) for k, v in categories.items()}}
        if value is not None:
            if bounds is None:
                raise MalformedError(f"crosstab: value {value!r} needs its public bounds")
            base["bounds"] = {value: list(bounds)}
            base["params"] = {"value": value}
        return self._run(base, kw)

    def ttest(self, column: str, bounds: Sequence[float], group: str,
              categories: Sequence[str], **kw: Any) -> Result:
        """Welch's two-sample t-test of ``column`` (clipped to its public ``bounds``) between
        the two ``categories`` of ``group`` (first minus second)."""
        return self._run({"statistic": "ttest", "columns": [column], "group_by": [group],
                          "bounds": {column: list(bounds)},
                          "categories": {group: list(categories)}}, kw)

    def chi2_independence(self, rows: str, columns: str,
                          categories: Mapping[str, Sequence[str]], **kw: Any) -> Result:
        """Pearson's chi-squared test of independence of ``rows`` x ``columns`` (no
        continuity correction); refused when a cell is suppressed."""
        return self._run({"statistic": "chi2_independence", "group_by": [rows, columns],
                          "categories": {k: list(v) for k, v in categories.items()}}, kw)

    def evaluate(self, fit: Result, **kw: Any) -> Result:
        """Evaluate the model ``fit`` published (a linear or logistic regression of this
        consortium) on the owners' rows: R^2, RMSE, MAE, or log-loss, accuracy, precision,
        recall, F1 at ``threshold`` and ROC AUC over ``bins`` score bins.  The query names
        the fit's query id; every owner checks the coefficients are the published ones.
        Other spec fields (``bounds``, ``filters``, ...) and ``dataset`` as for any query."""
        from statledger.protocol.stats.evaluation import evaluation_spec

        run_kw = {k: kw.pop(k) for k in ("dataset", "allow_partial", "progress") if k in kw}
        spec = evaluation_spec(fit.spec, fit.query_id, fit.values, **kw)
        return self.query(spec, **run_kw)

    model_evaluation = evaluate


def _write_frame(df: Any, path: Path, site: str) -> Path:
    """Write a DataFrame as Parquet for the site's node.  A text (object) column is written
    as text, missing cells as missing: a column mixing numbers and text stays text, so the
    node refuses it as a numeric column instead of guessing."""
    import pyarrow as pa

    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = [None if v is None or (isinstance(v, float) and v != v) else str(v)
                        for v in out[col]]
    try:
        out.to_parquet(path, index=False)
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise SiteError(f"site {site}: the DataFrame cannot be written as Parquet "
                        f"({type(exc).__name__})") from None
    return path


def _bounds(bounds: Mapping[str, Sequence[float]], cols: Sequence[str]) -> dict[str, list[float]]:
    missing = [c for c in cols if c not in bounds]
    if missing:
        raise MalformedError(f"bounds: every column needs public bounds; missing "
                             f"{', '.join(missing)}")
    return {c: [float(x) for x in bounds[c]] for c in cols}


def _vertical_owners(spec: Any) -> list[str] | None:
    """The two owners of a vertically partitioned spec; None for any other spec."""
    from statledger.protocol import vertical

    if not vertical.is_vertical(spec):
        return None
    return list(vertical.VerticalPlan.of(spec).part.owners)


def _pair_secrets(work: Path, pairs: Sequence[Sequence[str]], sites: Mapping[str, Any]
                  ) -> dict[str, dict[str, Path]]:
    """A fresh pair secret (mode 0600, this session only, never on the log) for each pair
    of sites that may answer vertical queries together."""
    from statledger.nodes.keys import write_pair_secret

    out: dict[str, dict[str, Path]] = {}
    for k, pair in enumerate(pairs):
        if (isinstance(pair, str) or len(pair) != 2 or pair[0] == pair[1]
                or any(p not in sites for p in pair)):
            raise MalformedError(f"vertical: pair {k} must name two different sites")
        path = work / f"vertical-pair-{k}.key"
        write_pair_secret([path])
        a, b = pair
        out.setdefault(a, {})[b] = path
        out.setdefault(b, {})[a] = path
    return out


def local(sites: Mapping[str, Any], *, compute: int = 3, threshold: int | None = 2,
          work_dir: str | Path | None = None,
          vertical: Sequence[Sequence[str]] = ()) -> Session:
    """Start a local cluster with one data owner per site and return its session.

    ``sites`` maps a site name to a pandas DataFrame (written by this function to the
    cluster's own data folder as Parquet), or to a CSV or Parquet path.  ``compute`` compute
    nodes share a ``threshold``-of-``compute`` key.  Every check runs before a process
    starts: site names, unreadable files, the same file or the same rows given twice.
    Use it as a context manager (or call ``close()``): the processes stop and ``work_dir``
    (default: a new temporary folder) is removed.  ``vertical``: pairs of site names that
    answer vertically partitioned queries together (docs/statistics.md, section 4); each
    pair gets a fresh pair secret."""
    from statledger.nodes.data import check_distinct, load_table
    from statledger.nodes.demo import querier_for, start_cluster

    if not isinstance(sites, Mapping) or not sites:
        raise MalformedError("sites: expected a mapping of site name -> DataFrame or path")
    if compute < 1:
        raise MalformedError("compute: at least one compute node")
    if threshold is not None and not 1 <= threshold <= compute:
        raise MalformedError(f"threshold: expected 1 to {compute} (the compute nodes)")
    for name in sites:
        if not isinstance(name, str) or not _SITE_RE.fullmatch(name) or _RESERVED.fullmatch(
                name):
            raise MalformedError(f"site name {name!r}: letters, digits, '.', '_' or '-' "
                                 "(not ledger, querier or compute-N)")
    work = Path(work_dir) if work_dir is not None else Path(
        tempfile.mkdtemp(prefix="statledger-local-"))
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        files: dict[str, Path] = {}
        for name, src in sites.items():
            if _is_dataframe(src):
                files[name] = _write_frame(src, data_dir / f"{name}.parquet", name)
            elif isinstance(src, (str, Path)):
                p = Path(src)
                if not p.is_file():
                    raise SiteError(f"site {name}: {p}: no such file")
                files[name] = p.resolve()
            else:
                raise SiteError(f"site {name}: expected a pandas DataFrame or a CSV/Parquet "
                                f"path, not {type(src).__name__}")
        tables = {}
        for name, p in files.items():
            try:
                tables[name] = load_table(p)
            except MalformedError as exc:
                raise SiteError(f"site {name}: {exc}") from None
        check_distinct(files, tables)
        cluster = start_cluster(work / "cluster", {n: {_DATASET: str(p)}
                                                   for n, p in files.items()},
                                n_compute=compute, threshold=threshold,
                                vertical_partners=_pair_secrets(work, vertical, files))
    except BaseException:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        querier = querier_for(cluster)
    except BaseException:
        cluster.stop()
        raise
    session = Session(querier, trust=querier.trust, dataset=_DATASET,
                      sites=files, cluster=cluster,
                      work_dir=work if work_dir is None else None,
                      trust_file=cluster.base_dir / "trust.json")
    session._tables.update(tables)
    return session


def connect(config: str | Path, *, dataset: str | None = None) -> Session:
    """A session with a running deployment, from the querier config written by
    ``statledger node init`` (registers the querier and, on first use, asks for the setup
    entry, as ``statledger query`` does).  ``dataset`` names the owners' dataset."""
    from statledger.nodes.cli import querier_from_config
    from statledger.nodes.config import load_config

    cfg = load_config(Path(config), role="querier")
    querier = querier_from_config(Path(config))  # refuses a config that pins no consortium
    return Session(querier, trust=querier.trust, dataset=dataset,
                   trust_file=Path(str(cfg.trust)))
