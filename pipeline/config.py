"""Typed parameters: one pydantic model per params.yaml section.

`load_params()` reads params.yaml and rejects unknown keys, wrong types and impossible values
with a ConfigError naming the key, e.g. `params.yaml: split.test_size: must be < 1 (got 1.5)`.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from pipeline.choices import Source, SplitStrategy
from pipeline.errors import ConfigError
from pipeline.evaluation.metric_table import PROMOTION_METRICS, RANKING_PROMOTION_METRICS

PARAMS_FILE = "params.yaml"


class Section(BaseModel):
    """A params.yaml section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticParams(Section):
    """Size and seed of the offline MovieLens-shaped generator."""

    n_users: int = Field(600, ge=2, description="number of users")
    n_movies: int = Field(3000, ge=2, description="number of movies in the catalogue")
    n_ratings: int = Field(100_000, ge=1, description="number of ratings (exact)")
    min_user_ratings: int = Field(20, ge=1, description="every user rates at least this many movies")
    seed: int = Field(42, description="seed of every random draw of the generator")

    @model_validator(mode="after")
    def _sizes_fit(self) -> SyntheticParams:
        if self.min_user_ratings > self.n_movies:
            raise ValueError(f"min_user_ratings ({self.min_user_ratings}) cannot exceed n_movies ({self.n_movies})")
        if self.n_ratings < self.n_users * self.min_user_ratings:
            raise ValueError(
                f"n_ratings ({self.n_ratings}) must be at least n_users * min_user_ratings ({self.n_users * self.min_user_ratings})"
            )
        if self.n_ratings > self.n_users * self.n_movies // 2:
            raise ValueError(
                f"n_ratings ({self.n_ratings}) must be at most half of n_users * n_movies ({self.n_users * self.n_movies // 2})"
            )
        return self


class FilesParams(Section):
    """data.source: files. Each is a local path (relative to the repository root) or an fsspec URL
    (s3://... needs the s3fs package); the format follows the extension: .csv (also .csv.gz, .csv.bz2,
    .csv.zst, .csv.xz) or .parquet."""

    ratings: str = Field("data/own/ratings.csv", min_length=1, description="the ratings file")
    movies: str = Field("data/own/movies.csv", min_length=1, description="the movies file")


class SqlParams(Section):
    """data.source: sql. The URL (with any credentials) comes from the environment, never from params."""

    url_env: str = Field(
        "RECSYS_DATABASE_URL",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the SQLAlchemy URL, e.g. sqlite:///ratings.db or "
        "postgresql+psycopg://user:password@host:5432/db",
    )
    ratings_query: str = Field("SELECT user_id, movie_id, rating, timestamp FROM ratings", min_length=1, description="returns the ratings")
    movies_query: str = Field("SELECT movie_id, title, genres, year FROM movies", min_length=1, description="returns the movies")
    connect_timeout_seconds: float = Field(10.0, gt=0, description="a database that does not answer within this fails")


class ColumnsParams(Section):
    """Own data (files, sql): the source's column name for each column of the data contract."""

    user: str = Field("user_id", min_length=1, description="ratings: user id (integers or strings)")
    movie: str = Field("movie_id", min_length=1, description="ratings and movies: movie id (integers or strings)")
    rating: str = Field("rating", min_length=1, description="ratings: the rating, on data.rating_scale")
    timestamp: str = Field("timestamp", min_length=1, description="ratings: unix seconds, or ISO 8601 date/time text (UTC when no zone)")
    title: str = Field("title", min_length=1, description="movies: title")
    genres: str | None = Field("genres", min_length=1, description="movies: genres joined by data.genre_separator; null = none")
    year: str | None = Field(
        None, min_length=1, description="movies: release year; null (or a missing value) = a trailing '(YYYY)' of the title"
    )


class RatingScaleParams(Section):
    """Own data: the ratings the source can hold, min, min + step, ..., max."""

    min: float = Field(0.5, description="lowest rating")
    max: float = Field(5.0, description="highest rating")
    step: float = Field(0.5, gt=0, description="distance between two allowed ratings")

    @model_validator(mode="after")
    def _steps_fit(self) -> RatingScaleParams:
        steps = (self.max - self.min) / self.step
        if not (self.min < self.max and math.isclose(steps, round(steps), abs_tol=1e-6)):
            raise ValueError(f"max - min ({self.max:g} - {self.min:g}) must be a positive whole number of steps ({self.step:g})")
        return self


class DataParams(Section):
    """Where the ratings come from."""

    source: Source = Field("synthetic", description="synthetic (offline), a MovieLens release, or your own data: files | sql")
    mirror: str | None = Field(
        None, description="local folder holding <name>.zip or <name>/; tried before downloading (env RECSYS_DATA_MIRROR)"
    )
    cache_dir: str | None = Field(
        None, description="where downloads are kept (default: $XDG_CACHE_HOME/recsys-pipeline or ~/.cache/recsys-pipeline)"
    )
    synthetic: SyntheticParams = SyntheticParams()
    max_memory_gb: float = Field(8.0, gt=0, description="stages whose estimated peak memory exceeds this stop at once (pipeline/memory.py)")
    files: FilesParams = FilesParams()
    sql: SqlParams = SqlParams()
    columns: ColumnsParams = ColumnsParams()
    rating_scale: RatingScaleParams = RatingScaleParams()
    genre_separator: str = Field("|", min_length=1, description="own data: what separates two genres in a movie's genres")

    def mirror_dir(self) -> Path | None:
        """The mirror folder: the param when set, else $RECSYS_DATA_MIRROR, else none."""
        value = self.mirror or os.environ.get("RECSYS_DATA_MIRROR") or None
        return Path(value).expanduser() if value else None

    def cache_path(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "recsys-pipeline"


class ValidateParams(Section):
    """Thresholds of the Great Expectations gate."""

    min_ratings: int = Field(100, ge=1, description="fewest ratings rows accepted")
    min_movies: int = Field(10, ge=1, description="fewest movies rows accepted")
    min_users: int = Field(10, ge=1, description="fewest distinct users accepted")
    min_timestamp: int = Field(788_918_400, ge=0, description="earliest plausible rating time (unix seconds; default 1995-01-01)")
    max_timestamp: int = Field(
        4_102_444_800,
        ge=0,
        description="latest plausible rating time (unix seconds; default 2100-01-01, so that milliseconds fail); "
        "a fixed bound rather than the clock, so the same data always gives the same report",
    )
    # Own data only (data.source files | sql), against the data validate accepted last from that source:
    max_rating_drop: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="largest share of ratings the new data may have lost against the previous accepted data "
        "(0.1: fewer than 90% of its ratings fails)",
    )
    max_days_ahead: int = Field(
        366,
        ge=1,
        description="a rating later than the previous accepted data's newest one by more than this many days is "
        "from the future; the stand-in for the clock, which validate never reads (README, Retraining on new data)",
    )

    @model_validator(mode="after")
    def _timestamps_ordered(self) -> ValidateParams:
        if self.max_timestamp <= self.min_timestamp:
            raise ValueError(f"max_timestamp ({self.max_timestamp}) must be after min_timestamp ({self.min_timestamp})")
        return self


def unix_seconds(value: str | date | datetime) -> int:
    """'YYYY-MM-DD' or an ISO 8601 date/time (UTC when it names no zone) -> unix seconds (floored)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("expected a date 'YYYY-MM-DD' or an ISO 8601 date/time") from None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return math.floor((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())


class SplitParams(Section):
    """How ratings are divided into train and test."""

    strategy: SplitStrategy = Field(
        "random",
        description="random rows | each user's latest ratings | held-out users | held-out movies | "
        "every rating before one moment in train, the rest in test",
    )
    test_size: float = Field(0.2, gt=0, lt=1, description="fraction of ratings (or users/movies) put in test")
    seed: int = Field(42, description="seed of the random draws")
    # YAML reads an unquoted 2018-01-01 as a date, so dates and datetimes are accepted as well as text.
    cutoff: datetime | date | str | None = Field(
        None,
        description="time_cutoff: train = ratings before this date/time (UTC), test = the rest; "
        "null = the moment that puts a test_size share of the ratings in test",
    )

    @field_validator("cutoff")
    @classmethod
    def _cutoff_parses(cls, value: datetime | date | str | None) -> datetime | date | str | None:
        if value is not None:
            unix_seconds(value)
        return value

    def cutoff_seconds(self) -> int | None:
        """split.cutoff in unix seconds, or None when it is null."""
        return None if self.cutoff is None else unix_seconds(self.cutoff)


class FeaturesParams(Section):
    """User and movie features computed from training ratings only."""

    genre_prior: float = Field(
        0.0,
        ge=0,
        description="pseudo-ratings that shrink a user's per-genre average toward the user's overall average",
    )


class CofiParams(Section):
    """Collaborative filtering (matrix factorization). The course's exact setup is `COURSE_COFI`;
    the defaults beyond it were chosen by measurement on ml-latest-small (benchmarks/bench_cofi.py)."""

    num_features: int = Field(50, ge=1, description="k, the length of x_i and w_j")
    lambda_: float = Field(0.15, ge=0, description="L2 regularization strength (its scale depends on `cost`)")
    learning_rate: float = Field(0.1, gt=0, description="Adam learning rate")
    iterations: int = Field(30, ge=1, description="passes over the training ratings (one Adam step each when batch_size is 0)")
    seed: int = Field(1234, description="seed of initialization, validation hold-out and shuffling")
    cost: Literal["sum", "mean"] = Field(
        "mean",
        description="sum: the course's J, lambda/2 * (sum W^2 + sum X^2) added once; mean: average over ratings of "
        "error^2 + lambda * (|x_i|^2 + |w_j|^2 [+ c_i^2]), so each row is shrunk in proportion to its ratings "
        "and lambda means the same at any data size",
    )
    init_scale: float = Field(0.1, gt=0, description="standard deviation of the normal initialization of X, W, b (course: 1)")
    mean_shrinkage: float = Field(
        10.0, ge=0, description="pseudo-ratings at the global mean added to each movie's mean (course: 0, plain mean)"
    )
    movie_bias: bool = Field(False, description="learn a regularized bias c_i per movie on top of its mean")
    dtype: Literal["float32", "float64"] = Field("float32", description="float precision of training (course: float64)")
    batch_size: int = Field(0, ge=0, description="ratings per Adam step; 0 = full batch (the course)")
    validation_fraction: float = Field(
        0.0, ge=0, le=0.5, description="share of training ratings held out to watch validation RMSE; 0 = none"
    )
    patience: int | None = Field(
        None, ge=1, description="iterations without validation improvement before stopping (best restored); null = never"
    )
    engine: Literal["numpy", "tensorflow", "spark"] = Field(
        "numpy",
        description="numpy: Adam with the gradient written out; tensorflow: the same Adam steps through GradientTape "
        "(the course's way, slower to start); spark: Spark MLlib ALS on spark.master (README)",
    )
    log_cost_every: int = Field(
        0, ge=0, description="spark: the cost J is computed every this many ALS iterations (refits from the seed); 0 = final only"
    )

    @model_validator(mode="after")
    def _early_stopping_needs_validation(self) -> CofiParams:
        if self.patience is not None and self.validation_fraction == 0:
            raise ValueError("patience needs validation_fraction > 0 (early stopping watches validation RMSE)")
        if self.engine == "spark" and (self.movie_bias or self.validation_fraction > 0):
            raise ValueError("engine spark (ALS) supports neither movie_bias nor validation_fraction > 0; set them to false and 0")
        return self


COURSE_COFI = CofiParams(
    num_features=100,
    lambda_=1.0,
    learning_rate=0.1,
    iterations=200,
    seed=1234,
    cost="sum",
    init_scale=1.0,
    mean_shrinkage=0.0,
    movie_bias=False,
    dtype="float64",
    batch_size=0,
    validation_fraction=0.0,
    patience=None,
)


class SparkParams(Section):
    """Where and how Spark runs (cofi.engine: spark). See README, "Spark engine"."""

    master: str = Field(
        "local[*]", min_length=1, description="local[*] | local[N] | spark://host:7077[,host2:7077] | yarn | k8s://https://host:443"
    )
    driver_memory: str = Field("4g", pattern=r"^[0-9]+[kmgt]?$", description="heap of the driver JVM (spark.driver.memory)")
    connect_timeout_seconds: float = Field(
        10.0, gt=0, description="a spark:// or k8s:// master that does not accept a connection within this fails the stage"
    )
    checkpoint_dir: str | None = Field(
        None,
        description="where ALS checkpoints its lineage every 10 iterations; null = a temporary local folder (local mode "
        "only: a cluster needs a path every node sees, e.g. hdfs:///tmp/recsys-checkpoints)",
    )
    conf: dict[str, str] = Field({}, description="more Spark settings, e.g. spark.executor.memory: 8g")


class CofiRankingParams(Section):
    """Collaborative filtering for top-N lists (pipeline/models/cofi_ranking.py): weighted matrix
    factorization over every (user, movie) cell, trained by alternating least squares. Defaults chosen
    on a validation slice carved from the ml-latest-small train split (benchmarks/bench_ranking_models.py)."""

    num_features: int = Field(64, ge=1, description="k, the length of x_i and w_j")
    lambda_: float = Field(0.02, ge=0, description="L2 strength, per row scaled by (its total confidence)^reg_exponent")
    reg_exponent: float = Field(
        1.0, ge=0, le=1, description="0: the same lambda for every row; 1: lambda times the row's total confidence (frequency-scaled)"
    )
    alpha: float = Field(3.0, ge=0, description="confidence of a positive: c = 1 + alpha * f(rating); every other cell has c = 1")
    confidence: Literal["constant", "rating"] = Field(
        "rating", description="f(rating): constant = 1 for every positive; rating = the rating in stars"
    )
    positive_threshold: float | None = Field(
        4.0, allow_inf_nan=False, description="a training rating at least this is a positive; null = every training rating is"
    )
    iterations: int = Field(15, ge=1, description="ALS iterations (users, then movies)")
    cg_steps: int = Field(3, ge=0, description="conjugate-gradient steps per half-iteration, warm-started; 0 = exact solves (slower)")
    movie_bias: bool = Field(False, description="learn a bias c_i per movie besides each user's bias b_j")
    init_scale: float = Field(0.1, gt=0, description="x_i and w_j start as N(0, (init_scale / sqrt(k))^2); biases at 0")
    seed: int = Field(1234, description="seed of the initialization")


class TowerParams(Section):
    """The shape of the user and movie towers (pipeline/models/content.py, build_tower); the course's."""

    user_layers: list[Annotated[int, Field(ge=1)]] = Field([256, 128], min_length=1, description="hidden units of the user tower (relu)")
    item_layers: list[Annotated[int, Field(ge=1)]] = Field([256, 128], min_length=1, description="hidden units of the movie tower (relu)")
    embedding_dim: int = Field(32, ge=1, description="length of v_u and v_m (linear output, L2-normalised)")


class ContentParams(TowerParams):
    """Content-based two-tower network. Network defaults: the course's; batch size, validation and
    early stopping: measured on ml-latest-small (benchmarks/bench_content.py)."""

    learning_rate: float = Field(0.01, gt=0, description="Adam learning rate")
    epochs: int = Field(20, ge=1, description="most training epochs (early stopping may end sooner)")
    batch_size: int = Field(1024, ge=1, description="ratings per mini-batch (the course used 32)")
    validation_fraction: float = Field(
        0.05, ge=0, lt=1, description="share of training ratings held out for val_loss and early stopping; 0 = none"
    )
    patience: int | None = Field(
        5, ge=0, description="epochs without val_loss improvement before stopping (best weights restored); null = never stop early"
    )
    seed: int = Field(1, description="seed of initialization, validation hold-out and shuffling")
    distribute: Literal["none", "multi_worker"] = Field(
        "none", description="multi_worker: train under MultiWorkerMirroredStrategy on the cluster in TF_CONFIG (README)"
    )
    collective_timeout: float = Field(
        300.0, gt=0, description="multi_worker: seconds a worker waits for the others in one collective before failing"
    )

    @model_validator(mode="after")
    def _early_stopping_needs_validation(self) -> ContentParams:
        if self.patience is not None and self.validation_fraction == 0:
            raise ValueError("patience needs validation_fraction > 0 (early stopping watches val_loss); set patience: null")
        return self


class ContentRankingParams(TowerParams):
    """The content towers trained for top-N lists (pipeline/models/content_retrieval.py): a softmax
    over in-batch negatives with a log-popularity correction. Defaults chosen on a validation slice
    of the ml-latest-small train split (benchmarks/bench_ranking_models.py --tune --models content_ranking)."""

    positive_threshold: float = Field(
        4.0, ge=0, description="training ratings at least this are the positive interactions; 0 = every training rating"
    )
    temperature: float = Field(0.1, gt=0, description="logits = v_u . v_m / temperature (v_u, v_m unit vectors)")
    logq_correction: bool = Field(True, description="subtract log q(m), the movie's share of the positives, from its logits")
    popularity_prior: float = Field(0.25, ge=0, description="scores = v_u . v_m / temperature + this * log q(m) (0 = the logits alone)")
    id_dim: int = Field(32, ge=0, description="length of the movie-id embedding fed to the movie tower (0 = none, and no history bag)")
    id_dropout: float = Field(
        0.2, ge=0, lt=1, description="share of a batch's movies whose id embedding is replaced by the unknown-movie row"
    )
    history: bool = Field(True, description="the user tower also reads a bag of the id embeddings of the user's rated movies")
    history_length: int = Field(
        256, ge=1, description="most rated movies in a user's training bag (a seeded random subset); serving uses all"
    )
    history_dropout: float = Field(
        0.25, ge=0, lt=1, description="share of the movies left out of each training bag (as a user's test movies are)"
    )
    blank_history: float = Field(
        0.2, ge=0, lt=1, description="share of training rows whose bag is emptied (how a user without ratings looks)"
    )
    epochs: int = Field(6, ge=1, description="passes over the positive interactions")
    batch_size: int = Field(256, ge=2, description="positives per step; the other rows' movies are the negatives")
    learning_rate: float = Field(0.005, gt=0, description="Adam learning rate")
    seed: int = Field(1, description="seed of initialization, shuffling and dropout")

    @model_validator(mode="after")
    def _history_needs_ids(self) -> ContentRankingParams:
        if self.history and self.id_dim == 0:
            raise ValueError("history needs id_dim > 0 (the history bag averages movie-id embeddings); set history: false")
        return self


class BiasParams(Section):
    """The bias baseline (defaults: Surprise BaselineOnly's ALS)."""

    reg_user: float = Field(15.0, ge=0, description="ridge penalty of the user biases")
    reg_movie: float = Field(10.0, ge=0, description="ridge penalty of the movie biases")
    iterations: int = Field(10, ge=1, description="alternating closed-form passes (users, then movies)")


class EaseParams(Section):
    """EASE (pipeline/models/ease.py): a dense movies x movies item-item baseline for top-N lists."""

    lambda_: float = Field(200.0, gt=0, description="L2 strength added to the diagonal of X^T X")
    positive_threshold: float | None = Field(
        None, allow_inf_nan=False, description="a training rating at least this counts as 1 in X; null = every training rating does"
    )
    max_movies: int = Field(
        20_000, ge=1, description="movies with a positive in train above this skip EASE with a reason (float32 m x m: 1.6 GB at 20,000)"
    )


class GenreAffinityParams(Section):
    """Genre-affinity baseline (pipeline/models/genre_affinity.py): ranks by the user's taste for the movie's genres."""

    prior: float = Field(
        1000.0, ge=0, description="pseudo-ratings shrinking a user's per-genre mean deviation toward 0 (their overall mean)"
    )


class EvaluateParams(Section):
    """Test-set metrics and the baselines they are compared with."""

    k: int = Field(10, ge=1, description="length of the ranked lists scored by P/R/nDCG/MAP@k")
    relevance_threshold: float = Field(4.0, description="a test rating at least this is relevant")
    cold_threshold: int = Field(5, ge=1, description="fewer training ratings than this makes a user or movie cold")
    plot_sample: int = Field(2000, ge=1, description="test ratings per model in plots/predictions_<model>.csv")
    seed: int = Field(0, description="seed of the plotted sample")
    bias: BiasParams = BiasParams()
    ease: EaseParams = EaseParams()
    genre_affinity: GenreAffinityParams = GenreAffinityParams()


class RankingParams(Section):
    """How top-N lists are ranked from predicted ratings (recommend and the ranking metrics alike).

    Rating-trained models float obscure movies with a few high ratings to the top; these
    adjustments (pipeline/models/ranking.py, chosen on a validation split of ml-latest-small,
    see benchmarks/README.md) trade that for movies with training support. All 0 = raw scores.
    """

    shrinkage: float = Field(
        500.0, ge=0, description="pseudo-ratings pulling a movie's score toward the user's mean score: (n s + m p) / (n + m)"
    )
    popularity_weight: float = Field(0.0, ge=0, le=1, description="blend of standardized scores with log popularity")
    min_support: int = Field(0, ge=0, description="movies with fewer training ratings go to the bottom of the list")


class PromoteParams(Section):
    """Champion/challenger gate."""

    metric: Literal[PROMOTION_METRICS] = Field(  # type: ignore[valid-type]  # the promotable metrics of the one table
        "rmse", description="the metric a rating model's challenger must beat its champion on (pipeline/evaluation/metric_table.py)"
    )
    ranking_metric: Literal[RANKING_PROMOTION_METRICS] = Field(  # type: ignore[valid-type]
        "ndcg_at_k", description="the metric a ranking model's challenger (it predicts no ratings) must beat its champion on"
    )
    min_improvement: float = Field(0.0, ge=0, description="how much better the challenger must be")


class RecommendParams(Section):
    """Batch recommendations (stage `recommend`, `recsys export`): every training user's top-k list."""

    k: int = Field(10, ge=1, description="movies per user in data/recommendations/top_k.parquet")
    batch_size: int = Field(
        256, ge=1, description="users scored at a time: memory holds batch_size x catalogue scores, never users x catalogue"
    )
    table: str = Field(
        "recommendations",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="`recsys export --sql`: the table (replaced as a whole) in the database of data.sql.url_env",
    )


class ServeParams(Section):
    """What the model served by `mlflow models serve` answers (pipeline/serving.py). Logged with each
    trained model; `MLFLOW_PYFUNC_INFERENCE_CONFIG='{"max_rows": 5000}'` overrides them when serving."""

    k: int = Field(10, ge=1, description="length of a top-k list when the request gives no params k")
    max_k: int = Field(100, ge=1, description="longest top-k list a request may ask for; a larger params k is answered 400")
    max_rows: int = Field(1000, ge=1, description="most rows (users, or user-movie pairs) in one request; more are answered 400")
    precompute_users: int = Field(
        10_000,
        ge=0,
        description="with at most this many training users, every one's top max_k list is computed when the model loads "
        "and a request slices it; more users (or 0): each request scores the catalogue",
    )

    @model_validator(mode="after")
    def _default_within_limit(self) -> ServeParams:
        if self.k > self.max_k:
            raise ValueError(f"k ({self.k}) cannot exceed max_k ({self.max_k})")
        return self


class MlflowParams(Section):
    experiment: str = Field("recsys", min_length=1, description="MLflow experiment name")


class Params(Section):
    """The whole params.yaml."""

    data: DataParams = DataParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    split: SplitParams = SplitParams()
    features: FeaturesParams = FeaturesParams()
    cofi: CofiParams = CofiParams()
    cofi_ranking: CofiRankingParams = CofiRankingParams()
    spark: SparkParams = SparkParams()
    content: ContentParams = ContentParams()
    content_ranking: ContentRankingParams = ContentRankingParams()
    evaluate: EvaluateParams = EvaluateParams()
    ranking: RankingParams = RankingParams()
    promote: PromoteParams = PromoteParams()
    recommend: RecommendParams = RecommendParams()
    serve: ServeParams = ServeParams()
    mlflow: MlflowParams = MlflowParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def validate_params(self) -> ValidateParams:
        return self.validate_


def _format_error(error: ErrorDetails, file: str) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{file}: {key}: unknown key"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return f"{file}: {key}: required key is missing"
    got = error.get("input")
    return f"{file}: {key}: {message} (got {got!r})" if not isinstance(got, dict) else f"{file}: {key}: {message}"


def parse_params(raw: Any, file: str = PARAMS_FILE) -> Params:
    """Validate an already-parsed params mapping."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_format_error(e, file) for e in exc.errors()]
        raise ConfigError("; ".join(lines)) from None


def with_paths_relative_to(params: Params, root: Path) -> Params:
    """`data.mirror` and `data.cache_dir`, when relative, made absolute against `root`."""
    changed = {
        key: str((root / value).resolve())
        for key in ("mirror", "cache_dir")
        if (value := getattr(params.data, key)) and not Path(value).expanduser().is_absolute()
    }
    return params.model_copy(update={"data": params.data.model_copy(update=changed)}) if changed else params


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> Params:
    """Read and validate params.yaml. Relative paths in it are relative to the folder holding it (the
    repository root, where DVC runs every stage), whatever the current directory."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: file not found (run from the repository root, or pass --params)")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}".replace("\n", " ")) from None
    return with_paths_relative_to(parse_params(raw, str(file)), file.resolve().parent)
