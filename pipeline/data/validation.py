"""Great Expectations suites for the raw ratings and movies (the `validate` stage's gate).

`validate_frames` runs both suites in an ephemeral GX context and returns a plain
`ValidationOutcome` (one `Check` per expectation: name, column, success, unexpected count, a few
examples); when given a folder it also builds the GX Data Docs HTML there. Given the summary of the
data accepted before (pipeline/data/drift.py) it also checks the ratings against it (their number,
no rating from the future) and the id maps against its id types. `validate_to_reports`
adds summary.json beside the Data Docs; `failure_message` turns the failures into readable lines.

The reports depend on the data and params only (and the data accepted before), byte for byte:
timestamps are bounded by params and the data accepted before (not the clock), GX's run is named
`RUN_NAME` at `RUN_TIME` (the Unix epoch, a fixed stand-in for a run time), its batch load time
is dropped (the data fingerprint stays), and the random element ids and the logo URL's load-time
query of the HTML are replaced by stable ones (`stable_html`).

Great Expectations takes seconds to import: it is imported inside the functions only.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import ValidateParams
from pipeline.data.drift import INTEGER, TEXT
from pipeline.data.ids import SOURCE_ID, WHOLE_NUMBER
from pipeline.data.schema import (
    GENRE_SEPARATOR,
    GENRE_VOCABULARY,
    GENRES,
    MOVIE,
    MOVIES_COLUMNS,
    RATING,
    RATINGS_COLUMNS,
    TIMESTAMP,
    TITLE,
    USER,
    YEAR,
    RatingScale,
)
from pipeline.errors import data_error, describe_examples
from pipeline.io import write_json

RATINGS_SUITE = "ratings"
MOVIES_SUITE = "movies"
ID_SUITES = {USER: "user_ids", MOVIE: "movie_ids"}  # the id maps (own data), against the previous accepted id types
DAY = 86_400
DOCS_SITE = "recsys_validation"  # the ephemeral context already owns "local_site"
EXAMPLES = 3
SUMMARY_FILE = "summary.json"
RUN_NAME = "validate"
RUN_TIME = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

# GX 1.24 re-serializes an expectation's kwargs (pydantic v1 .dict()) on every metric it resolves, so
# "movie_id in <all movie ids>" costs ~5 s per 33k ids (~14 s for ml-32m's 87k movies) whatever the
# row count. The equivalent "movie_id not in <rated ids absent from movies>" finds the same rows,
# count and examples, with a value set that is empty on clean data.
UNKNOWN_MOVIES_NOTE = (
    "The value set lists the rated movie ids absent from movies.parquet (computed with pandas); every rating must reference a listed movie."
)

# GX type names per contract column. Numeric columns must have exactly this dtype (GX's
# in-type-list check; "Int64Dtype" is pandas' nullable Int64). STRING columns may be pandas 3's
# string dtype (what parquet reads back) or an object column holding only Python strings (what
# conform_movies returns): GX's of-type "str" check accepts both and rejects anything else.
STRING = "str"
RATINGS_TYPES = {USER: "int64", MOVIE: "int64", RATING: "float64", TIMESTAMP: "int64"}
MOVIES_TYPES = {MOVIE: "int64", TITLE: STRING, YEAR: "Int64Dtype", GENRES: STRING}


@dataclass(frozen=True)
class Check:
    """The outcome of one expectation, in plain JSON-ready values."""

    suite: str
    expectation: str
    column: str | None
    success: bool
    problem: str
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    observed: Any = None


@dataclass(frozen=True)
class ValidationOutcome:
    checks: list[Check]
    counts: dict[str, int]

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.success]

    def to_dict(self) -> dict[str, Any]:
        suites: dict[str, Any] = {}
        for check in self.checks:
            suite = suites.setdefault(check.suite, {"success": True, "evaluated": 0, "failed": 0, "results": []})
            suite["evaluated"] += 1
            suite["failed"] += int(not check.success)
            suite["success"] &= check.success
            suite["results"].append({k: v for k, v in asdict(check).items() if k != "suite"})
        return {
            "success": self.success,
            "evaluated": len(self.checks),
            "failed": len(self.failures),
            "counts": self.counts,
            "suites": suites,
        }


def unknown_movie_ids(ratings: pd.DataFrame, movies: pd.DataFrame) -> list[Any]:
    """Distinct rated movie ids that movies does not list (vectorized; [] when a column is missing)."""
    if MOVIE not in ratings.columns or MOVIE not in movies.columns:
        return []
    rated = ratings[MOVIE].dropna().drop_duplicates()
    return _plain(rated[~rated.isin(movies[MOVIE])].tolist())


def genres_regex(vocabulary: tuple[str, ...] = GENRE_VOCABULARY) -> str:
    """Regex of a genres cell: '' or known genres joined by '|'."""
    genre = "(?:" + "|".join(re.escape(g) for g in vocabulary) + ")"
    return f"^(?:{genre}(?:{re.escape(GENRE_SEPARATOR)}{genre})*)?$"


def _expect(cls: Any, problem: str, **kwargs: Any) -> Any:
    return cls(meta={"problem": problem}, **kwargs)


def _type_expectations(gxe: Any, types: dict[str, str]) -> list[Any]:
    def one(column: str, type_: str) -> Any:
        if type_ == STRING:
            return _expect(gxe.ExpectColumnValuesToBeOfType, "not text (str)", column=column, type_=STRING)
        name = type_.removesuffix("Dtype")
        return _expect(gxe.ExpectColumnValuesToBeInTypeList, f"not of type {name}", column=column, type_list=[type_])

    return [one(c, t) for c, t in types.items()]


def ratings_expectations(scale: RatingScale, params: ValidateParams, unknown_movies: list[Any]) -> list[Any]:
    """The ratings suite: contract columns and types, ids, scale, uniqueness, known movies, times, sizes.

    `unknown_movies` are the rated movie ids absent from movies (see `unknown_movie_ids`)."""
    import great_expectations.expectations as gxe

    values = scale.values()
    step = f"{scale.min:g}..{scale.max:g} in steps of {scale.step:g}"
    return [
        _expect(
            gxe.ExpectTableColumnsToMatchSet,
            f"columns differ from {', '.join(RATINGS_COLUMNS)}",
            column_set=list(RATINGS_COLUMNS),
            exact_match=True,
        ),
        *_type_expectations(gxe, RATINGS_TYPES),
        *[_expect(gxe.ExpectColumnValuesToNotBeNull, "missing (null/NaN)", column=c) for c in RATINGS_COLUMNS],
        _expect(gxe.ExpectColumnValuesToBeInSet, f"outside the scale {step}", column=RATING, value_set=values),
        _expect(
            gxe.ExpectCompoundColumnsToBeUnique,
            "in duplicated (user_id, movie_id) pairs",
            column_list=[USER, MOVIE],
        ),
        _expect(
            gxe.ExpectColumnValuesToNotBeInSet,
            "rating a movie_id absent from movies",
            column=MOVIE,
            value_set=unknown_movies,
            notes=UNKNOWN_MOVIES_NOTE,
        ),
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            f"with timestamps before {params.min_timestamp} or after {params.max_timestamp} (unix seconds)",
            column=TIMESTAMP,
            min_value=params.min_timestamp,
            max_value=params.max_timestamp,
        ),
        _expect(
            gxe.ExpectTableRowCountToBeBetween,
            f"too few rows (need at least {params.min_ratings})",
            min_value=params.min_ratings,
        ),
        _expect(
            gxe.ExpectColumnUniqueValueCountToBeBetween,
            f"too few distinct users (need at least {params.min_users})",
            column=USER,
            min_value=params.min_users,
        ),
    ]


def utc(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def minimum_kept(n_ratings: int, max_drop: float) -> int:
    """The fewest ratings new data may have against `n_ratings` accepted before (a drop of at most `max_drop`)."""
    return math.ceil(round(n_ratings * (1 - max_drop), 9))


def future_bound(reference: Mapping[str, Any], params: ValidateParams) -> int:
    """The latest rating time new data may hold: the previous accepted newest rating + validate.max_days_ahead."""
    return int(reference["newest_timestamp"]) + params.max_days_ahead * DAY


def history_expectations(reference: Mapping[str, Any], params: ValidateParams) -> list[Any]:
    """Checks of the ratings against the previous accepted data's summary (pipeline/data/drift.py):
    no larger drop in their number than validate.max_rating_drop, no rating from the future."""
    import great_expectations.expectations as gxe

    previous, newest = int(reference["n_ratings"]), int(reference["newest_timestamp"])
    need, bound = minimum_kept(previous, params.max_rating_drop), future_bound(reference, params)
    return [
        _expect(
            gxe.ExpectTableRowCountToBeBetween,
            f"fewer ratings than validate.max_rating_drop {params.max_rating_drop:g} allows: the previous accepted "
            f"data had {previous:,}, at least {need:,} are needed",
            min_value=need,
        ),
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            f"from the future: later than {utc(bound)}, the previous accepted data's newest rating ({utc(newest)}) "
            f"+ validate.max_days_ahead {params.max_days_ahead} days",
            column=TIMESTAMP,
            max_value=bound,
        ),
    ]


def id_type_expectation(kind: str, previous_type: str, n_ids: int) -> Any:
    """One check of an id map's source ids (pipeline/data/ids.py) against the previous accepted data's id
    type: integers must stay whole numbers; text ids must keep at least one id that is not a whole number
    (else ingest keeps them as numbers instead of hashing them). Either change gives every id another number."""
    import great_expectations.expectations as gxe

    whole = f"^{WHOLE_NUMBER}$"
    name = kind.removesuffix("_id")
    if previous_type == INTEGER:
        problem = (
            f"are text, but the previous accepted data's {name} ids were integers: ingest hashes every {name} id "
            f"now (the id rule), so no {name} keeps its id"
        )
        return _expect(gxe.ExpectColumnValuesToMatchRegex, problem, column=SOURCE_ID, regex=whole)
    problem = (
        f"are whole numbers, as every {name} id now is, but the previous accepted data's {name} ids were text: ingest "
        f"keeps them as numbers instead of hashing them now (the id rule), so no {name} keeps its id"
    )
    # passes when the share of ids that are not whole numbers is at least `mostly`: half of one id's share
    # of n_ids, i.e. at least one such id
    return _expect(gxe.ExpectColumnValuesToNotMatchRegex, problem, column=SOURCE_ID, regex=whole, mostly=0.5 / max(n_ids, 1))


def movies_expectations(params: ValidateParams) -> list[Any]:
    """The movies suite: contract columns and types, unique ids, non-empty titles, known genres, size."""
    import great_expectations.expectations as gxe

    return [
        _expect(
            gxe.ExpectTableColumnsToMatchSet,
            f"columns differ from {', '.join(MOVIES_COLUMNS)}",
            column_set=list(MOVIES_COLUMNS),
            exact_match=True,
        ),
        *_type_expectations(gxe, MOVIES_TYPES),
        *[_expect(gxe.ExpectColumnValuesToNotBeNull, "missing (null/NaN)", column=c) for c in (MOVIE, TITLE, GENRES)],
        _expect(gxe.ExpectColumnValuesToBeUnique, "with a repeated movie_id", column=MOVIE),
        _expect(gxe.ExpectColumnValuesToMatchRegex, "with an empty title", column=TITLE, regex=r"\S"),
        _expect(
            gxe.ExpectColumnValuesToMatchRegex,
            f"with genres outside the {len(GENRE_VOCABULARY)} MovieLens genres ('' for none)",
            column=GENRES,
            regex=genres_regex(),
        ),
        _expect(
            gxe.ExpectTableRowCountToBeBetween,
            f"too few rows (need at least {params.min_movies})",
            min_value=params.min_movies,
        ),
    ]


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a value from a GX result (numpy scalars, NaN, nested containers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


TYPE_CHECKS = ("expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type")


def _exception_message(info: Any) -> str | None:
    """First error line of a GX exception_info: flat, or keyed by metric id (missing column)."""
    if not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            return (str(entry.get("exception_message") or "unknown error").splitlines() or [""])[0]
    return None


def to_check(suite: str, result: Any, dtypes: dict[str, str] | None = None) -> Check:
    """One GX ExpectationValidationResult -> Check. `dtypes` (column -> pandas dtype) names the
    observed type of a failed type check (GX reports Int64 as 'int64')."""
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or (",".join(kwargs["column_list"]) if "column_list" in kwargs else None)
    problem = (config.meta or {}).get("problem", config.type)
    error = _exception_message(result.exception_info)
    if error is not None:
        return Check(suite, config.type, column, False, f"could not be checked: {error}")
    details = result.result or {}
    count = details.get("unexpected_count")
    observed = _plain(details.get("observed_value"))
    if config.type in TYPE_CHECKS and dtypes and column in dtypes:
        observed = dtypes[column]
    examples: list[Any] = []
    if not result.success:
        if config.type == "expect_column_values_to_not_be_null":
            examples = [f"row {i}" for i in _plain(details.get("partial_unexpected_index_list") or [])]
        else:
            examples = _plain(details.get("partial_unexpected_list") or [])
            examples = list({repr(e): e for e in examples}.values())  # duplicate pairs repeat
    return Check(
        suite=suite,
        expectation=config.type,
        column=column,
        success=bool(result.success),
        problem=problem,
        unexpected_count=None if count is None else int(count),
        examples=examples[:EXAMPLES],
        observed=observed,
    )


def _context(docs_dir: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    if docs_dir is not None:
        context.add_data_docs_site(
            DOCS_SITE,
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _run_suite(context: Any, name: str, frame: pd.DataFrame, expectations: list[Any]) -> list[Check]:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    batch = context.data_sources.add_pandas(name).add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES},
        run_id=RunIdentifier(run_name=RUN_NAME, run_time=RUN_TIME),
    )
    dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
    return [to_check(name, r, dtypes) for r in result.results]


def counts(ratings: pd.DataFrame, movies: pd.DataFrame) -> dict[str, int]:
    """Row and distinct-id counts for the summary (0 for a missing column)."""

    def distinct(frame: pd.DataFrame, column: str) -> int:
        return int(frame[column].nunique()) if column in frame.columns else 0

    return {
        "n_ratings": len(ratings),
        "n_users": distinct(ratings, USER),
        "n_rated_movies": distinct(ratings, MOVIE),
        "n_movies": len(movies),
    }


def validate_frames(
    ratings: pd.DataFrame,
    movies: pd.DataFrame,
    scale: RatingScale,
    params: ValidateParams,
    *,
    docs_dir: str | Path | None = None,
    reference: Mapping[str, Any] | None = None,
    id_maps: Mapping[str, pd.DataFrame] | None = None,
) -> ValidationOutcome:
    """Run both suites; build Data Docs into `docs_dir` when given. With the previous accepted data's
    summary (`reference`) the ratings are also checked against it, and each id map of `id_maps`
    (id kind -> data/raw/id_map/ table) against its id type."""
    unknown = unknown_movie_ids(ratings, movies)
    context = _context(None if docs_dir is None else Path(docs_dir))
    history = [] if reference is None else history_expectations(reference, params)
    checks = _run_suite(context, RATINGS_SUITE, ratings, ratings_expectations(scale, params, unknown) + history)
    checks += _run_suite(context, MOVIES_SUITE, movies, movies_expectations(params))
    previous_types = {} if reference is None else reference.get("id_types", {})
    for kind, id_map in (id_maps or {}).items():
        if previous_types.get(kind) in (INTEGER, TEXT):
            expectation = id_type_expectation(kind, previous_types[kind], len(id_map))
            checks += _run_suite(context, ID_SUITES[kind], id_map, [expectation])
    if docs_dir is not None:
        _drop_load_times(context)
        context.build_data_docs(site_names=[DOCS_SITE])
        for page in Path(docs_dir).rglob("*.html"):
            page.write_text(stable_html(page.read_text(encoding="utf-8")), encoding="utf-8")
    return ValidationOutcome(checks=checks, counts=counts(ratings, movies))


def _drop_load_times(context: Any) -> None:
    """Remove the wall-clock time GX stamps on each batch it loads from the stored results."""
    store = context.validation_results_store
    for key in store.list_keys():
        result = store.get(key)
        result.meta.get("batch_markers", {}).pop("ge_load_time", None)
        store.set(key, result)


_LOAD_TIME_QUERY = re.compile(r"\?d=\d{8}T\d{6}\.\d+Z(&?)")  # GX's cache-buster on asset URLs
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def stable_html(page: str) -> str:
    """A Data Docs page without GX's per-render parts: the load-time query on asset URLs goes and
    each random (uuid4) element id becomes its order of appearance in the page, so links still match."""
    page = _LOAD_TIME_QUERY.sub(lambda m: "?" if m[1] else "", page)
    ids: dict[str, str] = {}
    return _UUID.sub(lambda m: ids.setdefault(m[0], f"id{len(ids) + 1}"), page)


def failure_line(check: Check, file: str) -> str:
    """`file: column 'c': N rows <problem> (e.g. ...) [expectation]`; table-level checks show what was observed."""
    if check.unexpected_count is None:
        got = "" if check.observed is None else f" (got {describe_examples([check.observed])})"
        error = data_error(file, check.problem + got, column=check.column)
    else:
        error = data_error(file, check.problem, column=check.column, count=check.unexpected_count, examples=check.examples)
    return f"{error} [{check.expectation}]"


def failure_message(outcome: ValidationOutcome, files: dict[str, str]) -> str:
    """One line per failed expectation; `files` maps a suite name to the file it checked."""
    return "\n".join(failure_line(c, files.get(c.suite, c.suite)) for c in outcome.failures)


def validate_to_reports(
    ratings: pd.DataFrame,
    movies: pd.DataFrame,
    scale: RatingScale,
    params: ValidateParams,
    out_dir: str | Path,
    *,
    reference: Mapping[str, Any] | None = None,
    id_maps: Mapping[str, pd.DataFrame] | None = None,
) -> ValidationOutcome:
    """Validate, then write `out_dir`/summary.json and the Data Docs HTML (`out_dir`/index.html)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outcome = validate_frames(ratings, movies, scale, params, docs_dir=out, reference=reference, id_maps=id_maps)
    write_json(out / SUMMARY_FILE, outcome.to_dict())
    return outcome
