"""Where every stage reads and writes, relative to the repository root (DVC runs stages there)."""

from pathlib import Path

DATA = Path("data")
RAW = DATA / "raw"
RAW_RATINGS = RAW / "ratings.parquet"
RAW_MOVIES = RAW / "movies.parquet"
RAW_META = RAW / "dataset.json"
RAW_ID_MAP = RAW / "id_map"  # own data only: users.parquet, movies.parquet (contract id -> source id)
ID_MAP_USERS = "users.parquet"
ID_MAP_MOVIES = "movies.parquet"

SPLIT = DATA / "split"
TRAIN = SPLIT / "train.parquet"
TEST = SPLIT / "test.parquet"

FEATURES = DATA / "features"

MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")
VALIDATION_REPORTS = REPORTS / "validation"
