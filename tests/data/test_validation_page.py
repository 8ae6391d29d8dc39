"""reports/validation/index.html: every expectation with its result, readable offline."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.data.validation_page import render, write_page
from tests.browser import count_near, external_resources, screenshot, share_not_white

GREEN, RED = (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E)


def result(expectation: str, column: str | None, success: bool, problem: str, **more) -> dict:
    return {"expectation": expectation, "column": column, "success": success, "problem": problem,
            "unexpected_count": None, "examples": [], "observed": None, **more}  # fmt: skip


SUMMARY = {
    "success": False,
    "evaluated": 3,
    "failed": 1,
    "counts": {"n_ratings": 12345, "n_users": 3, "n_rated_movies": 3, "n_movies": 4},
    "suites": {
        "ratings": {
            "success": False, "evaluated": 2, "failed": 1,
            "results": [
                result("expect_table_row_count_to_be_between", None, True, "too few rows (need at least 6)", observed=12345),
                result("expect_column_values_to_be_in_set", "rating", False, "outside the scale 0.5..5",
                       unexpected_count=2, examples=[7.0, "<script>alert(1)</script>"]),
            ],
        },
        "movies": {
            "success": True, "evaluated": 1, "failed": 0,
            "results": [result("expect_column_values_to_be_unique", "movie_id", True, "with a repeated movie_id", unexpected_count=0)],
        },
    },
}  # fmt: skip


def test_page_lists_each_expectation_failures_first_with_counts_and_examples():
    page = render(SUMMARY, {"ratings": "data/raw/ratings.parquet"})
    assert "<title>Data validation: failed</title>" in page
    assert "2 of 3 expectations passed, 1 failed." in page
    assert "ratings (<code>data/raw/ratings.parquet</code>): 1 of 2 passed" in page
    assert "movies: 1 of 1 passed" in page
    assert '<td class="number">12,345</td>' in page
    ratings = page[page.index("<h2>ratings") : page.index("<h2>movies")]
    assert ratings.index("badge fail") < ratings.index("badge pass")  # the failure is the first row
    failed_row = ratings[ratings.index('<tr class="fail">') :].split("</tr>")[0]
    assert "<code>expect_<wbr>column_<wbr>values_<wbr>to_<wbr>be_<wbr>in_<wbr>set</code>" in failed_row and "<td>rating</td>" in failed_row
    assert '<td class="number">2</td>' in failed_row
    assert "7.0, &lt;script&gt;alert(1)&lt;/script&gt;" in failed_row  # examples escaped, never markup
    assert "<script" not in page


def test_page_needs_no_network_and_links_the_data_docs_beside_it(tmp_path: Path):
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    (tmp_path / "expectations").mkdir()
    (tmp_path / "expectations" / "ratings.html").write_text("gx")
    (tmp_path / "validations" / "ratings" / "run").mkdir(parents=True)
    (tmp_path / "validations" / "ratings" / "run" / "ratings.html").write_text("gx")
    page = write_page(tmp_path).read_text()
    assert "http://" not in page and "https://" not in page and external_resources(page) == []
    assert '<a href="expectations/ratings.html">' in page and '<a href="validations/ratings/run/ratings.html">' in page


def test_page_shows_in_a_real_browser_with_pass_and_fail_colours(tmp_path: Path):
    page = tmp_path / "index.html"
    page.write_text(render(SUMMARY, {"ratings": "data/raw/ratings.parquet"}))
    pixels = screenshot(page, tmp_path)
    assert share_not_white(pixels) > 0.03  # text and tables, not a blank page
    assert count_near(pixels, RED) > 500  # the FAILED badge and the failed row's mark
    assert count_near(pixels, GREEN) > 50  # the passed rows' marks
