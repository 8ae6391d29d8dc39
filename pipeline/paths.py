"""Where every stage reads and writes: one `Layout` under a root folder, handed to each stage's run().

DVC runs the stages at the repository root, so the CLI uses `DEFAULT_LAYOUT` (root "."); tests build
`Layout(tmp_path)` and never change the working directory. Paths under the root "." stay relative
("data/raw/ratings.parquet"), which is what error messages then name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.io import require

CURVES = {"cofi": "cost", "cofi_ranking": "cost", "content": "loss", "content_ranking": "loss"}  # what each training stage's curve tracks
ID_MAP_USERS = "users.parquet"  # in raw_id_map: contract id -> source id
ID_MAP_MOVIES = "movies.parquet"


@dataclass(frozen=True)
class Layout:
    """The pipeline's folders and files below `root`."""

    root: Path = Path(".")

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def raw(self) -> Path:
        return self.data / "raw"

    @property
    def raw_ratings(self) -> Path:
        return self.raw / "ratings.parquet"

    @property
    def raw_movies(self) -> Path:
        return self.raw / "movies.parquet"

    @property
    def raw_meta(self) -> Path:
        return self.raw / "dataset.json"

    @property
    def raw_id_map(self) -> Path:
        """data/raw/id_map/, own data only: ID_MAP_USERS and ID_MAP_MOVIES (contract id -> source id)."""
        return self.raw / "id_map"

    @property
    def accepted_data(self) -> Path:
        """data/accepted.json: figures of the data validate accepted last (and of the data before it), per source."""
        return self.data / "accepted.json"

    @property
    def split(self) -> Path:
        return self.data / "split"

    @property
    def train(self) -> Path:
        return self.split / "train.parquet"

    @property
    def test(self) -> Path:
        return self.split / "test.parquet"

    @property
    def features(self) -> Path:
        return self.data / "features"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def records(self) -> Path:
        """records/: what the stages record beside their metrics (pipeline/records.py), one file each."""
        return self.root / "records"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def validation_reports(self) -> Path:
        return self.reports / "validation"

    @property
    def drift(self) -> Path:
        """metrics/drift.json: the accepted data against the data accepted before it (validate); its
        data source and id types are in record_of(drift)."""
        return self.metrics / "drift.json"

    @property
    def evaluation(self) -> Path:
        return self.metrics / "evaluation.json"

    @property
    def promotion(self) -> Path:
        return self.metrics / "promotion.json"

    @property
    def error_by_activity(self) -> Path:
        return self.plots / "error_by_activity.csv"

    @property
    def report_html(self) -> Path:
        return self.reports / "report.html"

    @property
    def report_md(self) -> Path:
        return self.reports / "report.md"

    @property
    def recommendations(self) -> Path:
        return self.data / "recommendations"

    @property
    def top_k(self) -> Path:
        """data/recommendations/top_k.parquet: every training user's top-k (user_id, rank, movie_id, score)."""
        return self.recommendations / "top_k.parquet"

    @property
    def top_k_meta(self) -> Path:
        """data/recommendations/meta.json: which model wrote top_k.parquet and why."""
        return self.recommendations / "meta.json"

    def model_dir(self, name: str) -> Path:
        """models/<name>/: what a training stage saves and evaluate loads."""
        return self.models / name

    def training_metrics(self, name: str) -> Path:
        """metrics/train_<name>.json: the training stage's numbers."""
        return self.metrics / f"train_{name}.json"

    def training_record(self, name: str) -> Path:
        """records/train_<name>.json: the training stage's MLflow run and model URI, the dataset it was
        trained on and its wall-clock seconds."""
        return self.record_of(self.training_metrics(name))

    def record_of(self, metrics_file: Path) -> Path:
        """records/<file>: the rest of the result whose numbers are in metrics/<file>."""
        return self.records / metrics_file.name

    def learning_curve(self, name: str) -> Path:
        """plots/<name>_cost.csv (cofi) or <name>_loss.csv (content): a training stage's curve."""
        return self.plots / f"{name}_{CURVES.get(name, 'curve')}.csv"

    def predictions(self, name: str) -> Path:
        """plots/predictions_<name>.csv: evaluate's sample of a model's test predictions."""
        return self.plots / f"predictions_{name}.csv"

    def writer_of(self, path: Path) -> str:
        """The stage that writes `path` (a file or a folder below one of the stages' outputs)."""
        writers = {
            self.raw: "ingest",
            self.accepted_data: "validate",
            self.drift: "validate",
            self.record_of(self.drift): "validate",
            self.split: "split",
            self.features: "features",
            self.evaluation: "evaluate",
            self.record_of(self.evaluation): "evaluate",
            self.recommendations: "recommend",
        }
        for candidate in (path, *path.parents):
            if candidate in writers:
                return writers[candidate]
        return "previous"

    def require(self, *files: Path) -> None:
        """`io.require` for each file, naming the stage that writes it."""
        for path in files:
            require(path, self.writer_of(path))


DEFAULT_LAYOUT = Layout()
